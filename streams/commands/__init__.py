"""One module per ``carewatch`` sub-command (``add_arguments`` + ``main``)."""
