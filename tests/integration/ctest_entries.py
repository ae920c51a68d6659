"""Lists the CTest entries of the integration suites (tests/CMakeLists.txt
runs this at configure time), so that `ctest -j` runs them side by side.

A class whose tests share one server (SharedServerCase, or any class with
its own setUpClass) is one entry: splitting it would start that server once
per entry. A class whose tests each start their own servers is one entry
per test. Most of these tests wait on servers, timers and training jobs
rather than compute, so many small entries overlap that waiting; a suite as
one entry made the run as long as its slowest module.

Prints one `module.Class[.test]` name per line.
"""

import importlib
import inspect
import sys
import unittest

import kennel_harness


def shares_a_server(cls):
    return (issubclass(cls, kennel_harness.SharedServerCase)
            or cls.setUpClass.__func__ is not unittest.TestCase.setUpClass.__func__)


def entries(module_name):
    module = importlib.import_module(module_name)
    loader = unittest.TestLoader()
    out = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        # Classes a module imports from another are that module's entries.
        if cls.__module__ != module_name or not issubclass(cls, unittest.TestCase):
            continue
        names = loader.getTestCaseNames(cls)
        if not names:
            continue
        prefix = "%s.%s" % (module_name, cls.__name__)
        if shares_a_server(cls):
            out.append(prefix)
        else:
            out.extend("%s.%s" % (prefix, n) for n in names)
    if not out:
        raise SystemExit("ctest_entries.py: %s holds no tests" % module_name)
    return out


def main(modules):
    for m in modules:
        for e in entries(m):
            print(e)


if __name__ == "__main__":
    main(sys.argv[1:])
