"""gen2sim: a deterministic model of Hyper-V Generation 1 and 2 machines that boots an x64 hal.dll."""
