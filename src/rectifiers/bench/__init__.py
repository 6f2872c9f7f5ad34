"""`rectifiers bench`: the PReLU op, the training step with its peak memory, and the loader, timed on
this machine. A leaf of the package: only `rectifiers.cli.bench` imports it.

    machine_info  what a figure depends on (CPU, ISA, load) and the machine's matmul peak
    prelu_op      the PReLU op against ReLU and torch's PReLU
    step          `step_timing`'s rows as tables, and each variant's peak RSS in a fresh process
    loader        the loader's images/s, alone and beside the trainer's step
    suite         what the command runs, table by table
    table         the aligned plain-text tables they print
"""

SUITES = ("prelu", "step", "loader", "all")  # what `rectifiers bench WHAT` can run
