"""The `simclr-keras` command: `pretrain`, `evaluate`, `demo` and `convert-weights`.

A package of its own, beside `simclr_keras`, so that the console script's
entry module (`simclr_keras_cli.main`) can parse the arguments and print
`--help` without importing Keras: importing `simclr_keras` imports every
module it has. Layout: `arguments` builds the parser (no Keras), `main` runs
a command and turns usage errors into one line, `pretrain`, `evaluate` and
`demo` hold one command each, as small steps.
"""
