"""The locust custom messages between the controller (on the master, or the only runner) and the processes that
host users. One name per message, used on both sides: a misspelt name would register a handler nothing sends."""

# controller -> user processes
CONFIG = "vhil_config"  # the run's rooms, population and timing; resets the process's state
WINDOW = "vhil_window"  # a publish window opens: its index, start and schedule
FLUSH = "vhil_flush"  # send an interim report now (stepup judges each step as it ends)
STOP = "vhil_stop"  # stop; send the final report once the sessions have ended

# user processes -> controller
JOINED = "vhil_joined"  # a member joined its room
PUB_READY = "vhil_pub_ready"  # a publisher is connected and ready
REPORT = "vhil_report"  # a process's counters (interim or final)
