"""recipe-tui's UI-free core: config, data, models, checks, trainer, events and run directories.

Never imports textual or rich (tests/core/test_import_rule.py enforces it).
"""
