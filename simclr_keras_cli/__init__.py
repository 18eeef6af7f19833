"""The `simclr-keras` command: `pretrain`, `evaluate`, `embed`, `demo`, `convert-weights`, `backbones`.

A package of its own, beside `simclr_keras`, so that the console script's
entry module (`simclr_keras_cli.main`) can parse the arguments and print
`--help` without importing Keras: importing `simclr_keras` imports every
module it has. Layout: `arguments` builds the parser (no Keras), `main` runs
a command and turns usage errors into one line, `usage_errors` holds
`UsageError` and the path checks that raise it (no Keras), `pretrain_checks`
and `evaluate_checks` the usage errors `main` reports before it loads Keras
(with the library's lists and rules from `simclr_keras_rules`), `run_files` the
names of the files a `pretrain` run leaves and their JSON reading and
writing, `report` the run's HTML report; `pretrain`, `evaluate`, `embed`,
`demo`, `convert_weights` and `backbones` hold one command each, as small steps.
"""
