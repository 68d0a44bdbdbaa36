"""`python -m aigc_keras.cli` is `aigc-keras`."""

from . import main

main()
