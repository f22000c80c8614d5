"""Pass/fail tally shared by the Python test scripts (tests/cli/*.py, tests/sdk/py_flow.py).

    T = Tally("attestd hostile", show=30)   # label (optional), print at most 30 failures
    check = T.check                         # check(cond, what): counts; "FAIL: what" on stderr
    ...
    T.finish()                              # "attestd hostile: N passed, M failed"; exit 1 on a failure

T.passed and T.failed are plain counters (a script may count a failure itself: T.failed += 1).
"""
import sys


class Tally:
    def __init__(self, label=None, show=None):
        self.label = label  # prefix of the summary line ("label: N passed, M failed")
        self.show = show  # print only the first `show` failures (None: all of them)
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        """Counts cond as a pass or a failure; a failure prints "FAIL: what" on stderr."""
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            if self.show is None or self.failed <= self.show:
                print("FAIL:", what, file=sys.stderr)
        return bool(cond)

    def summary(self, then=None):
        """"[label: ]N passed, M failed[, then: THEN]"."""
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.label:
            line = "%s: %s" % (self.label, line)
        if then is not None:
            line += ", then: %s" % (then,)
        return line

    def finish(self, then=None):
        """Prints the summary on stdout and exits: 1 on any failure (or when the script stopped on
        `then`, an exception), else 0."""
        print(self.summary(then))
        sys.exit(1 if self.failed or then is not None else 0)
