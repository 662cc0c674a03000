# Runs the core tests (tests/core/test_core_*.py) inside the MicroPython VM: bridge.mjs --run vm_runner calls
# main(). One line per test, `PASS|FAIL|ERROR module.Class.test: detail`, then `DONE n`; tests/test_core_in_vm.py
# reads them. MicroPython's unittest runs whole modules; this runs each test on its own, so one failure names
# its test and the others still run.
import sys
import unittest

MODULES = ("test_core_frames", "test_core_http", "test_core_handshake", "test_core_protocol", "test_core_utf8")


def _tests(module):
    for name in sorted(dir(module)):
        cls = getattr(module, name)
        if isinstance(cls, type) and issubclass(cls, unittest.TestCase) and cls is not unittest.TestCase:
            for method in sorted(dir(cls)):
                if method.startswith("test"):
                    yield cls, method


def _one_line(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).replace("\n", " ")


def main():
    failures = 0
    count = 0
    for module_name in MODULES:
        try:
            module = __import__(module_name)
        except Exception as exc:  # the module cannot even be imported here: every test in it fails
            print("ERROR %s: import: %s" % (module_name, _one_line(exc)))
            failures += 1
            continue
        for cls, method in _tests(module):
            count += 1
            test_id = "%s.%s.%s" % (module_name, cls.__name__, method)
            case = cls()
            # MicroPython's TestCase defines setUp/tearDown only when a subclass does
            set_up, tear_down = getattr(case, "setUp", None), getattr(case, "tearDown", None)
            try:
                if set_up:
                    set_up()
                try:
                    getattr(case, method)()
                finally:
                    if tear_down:
                        tear_down()
            except AssertionError as exc:
                failures += 1
                print("FAIL %s: %s" % (test_id, _one_line(exc)))
            except Exception as exc:
                failures += 1
                print("ERROR %s: %s" % (test_id, _one_line(exc)))
                sys.print_exception(exc)
            else:
                print("PASS " + test_id)
    print("DONE %d" % count)
    return 1 if failures else 0
