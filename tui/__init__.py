"""recipe-tui's terminal side: the Textual app (``app.py``) and the command line (``cli.py``).

Importing this package imports nothing heavy; the headless commands never load textual.
"""
