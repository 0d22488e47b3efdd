"""rdc-sweep's shared leaves (names, errors) and the `rdc` command.

`rdc.names` and `rdc.errors` import nothing and may be used by every room; `rdc.cli` sits on
top and dispatches to the rooms lazily, so `rdc frontier` never imports Ray or torch.
"""
