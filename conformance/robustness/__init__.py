"""The robustness suite (`vhil robustness`): what hostile clients and split reads do to any target. See docs/robustness.md."""
