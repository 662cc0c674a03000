"""Fault injection for the simulated board, set per run with `VHIL_SIM_FAULTS` (comma-separated):

    panic-after=S      one ESP-IDF panic (LoadProhibited, with backtrace) S seconds after the first boot, then reboot
    panic-on-exec      every raw REPL exec panics instead of running the code
    brownout-loop      every boot ends in a brownout reset: the board never reaches the REPL
    hang-after=S       S seconds after the first boot the board stops answering (until a hard reset)
    slow-boot=S        S seconds of silence between the ROM lines and MicroPython starting
    noise              garbage bytes on the line at boot and while the REPL idles
    no-raw-paste       firmware without raw-paste (like MicroPython < 1.14): the runner must use its paced fallback

Runtime triggers (the sim target sends these): SIGUSR1 = panic now, SIGUSR2 = hard reset (the EN pin).
"""
from __future__ import annotations

from dataclasses import dataclass

from hil.errors import SetupError

FAULTS_ENV = "VHIL_SIM_FAULTS"
_TIMED = ("panic-after", "hang-after", "slow-boot")
_FLAGS = ("panic-on-exec", "brownout-loop", "noise", "no-raw-paste")


@dataclass(frozen=True)
class Faults:
    panic_after: float | None = None
    hang_after: float | None = None
    slow_boot: float = 0.0
    panic_on_exec: bool = False
    brownout_loop: bool = False
    noise: bool = False
    no_raw_paste: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Faults":
        values: dict[str, object] = {}
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            name, _, value = item.partition("=")
            if name in _TIMED:
                try:
                    seconds = float(value)
                except ValueError:
                    raise SetupError(f"{FAULTS_ENV}: {name} needs seconds, e.g. {name}=5 (got {item!r})") from None
                if seconds < 0:
                    raise SetupError(f"{FAULTS_ENV}: {name} must not be negative (got {item!r})")
                values[name.replace("-", "_")] = seconds
            elif name in _FLAGS and not value:
                values[name.replace("-", "_")] = True
            else:
                raise SetupError(f"{FAULTS_ENV}: unknown fault {item!r}; use {', '.join(f'{t}=S' for t in _TIMED)}, "
                                 f"{', '.join(_FLAGS)}")
        return cls(**values)  # type: ignore[arg-type]
