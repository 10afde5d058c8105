"""recipe-tui's Textual app: it reads the recipes file (or checks the watched run dir) and opens the home
screen, ``MainScreen`` (checklist, item detail, dataset, live charts, run log, status line) or
``WatchScreen`` (a run another process writes). The screens own their jobs and panes; the app keeps
what is global: the stylesheet, help, quitting (which stops every job first) and the command palette.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from recipe_tui.core.config import ConfigError, load_recipes

from .screens.main_screen import MainScreen
from .screens.run_screen import RunScreen
from .screens.watch_screen import WatchScreen
from .ui_state import UiState
from .widgets.help_screen import HelpScreen


class RecipeApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "recipe-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (160, "-xwide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
                 watch: str | Path | None = None) -> None:
        super().__init__()
        self.runs = Path(runs)
        self.ui = UiState.load(self.runs)  # theme, log-y and folds of the last session
        # Bad input fails here, before the terminal switches to the app.
        if watch is not None:
            if not Path(watch).is_dir():
                raise ConfigError(f"{watch}: no such run directory (watch takes runs/<recipe>/<timestamp>).")
            self.exp = None
            self.ui.read_only = True  # watch mode writes nothing into the runs folder
            self.home: RunScreen = WatchScreen(watch, self.runs, self.ui)
        else:
            recipes = load_recipes(file)
            self.exp = recipes.experiment(recipe)
            self.home = MainScreen(recipes, self.exp, self.runs, self.ui)

    def get_default_screen(self) -> Screen:
        return self.home

    def on_mount(self) -> None:
        if self.ui.theme in self.available_themes:
            self.theme = self.ui.theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, _: object) -> None:
        if self.theme != self.ui.theme:
            self.ui.theme = self.theme
            problem = self.ui.save()
            if problem:
                self.notify(problem, severity="warning")

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's "Screenshot": an SVG in the runs dir (Textual's default, the Downloads folder,
        may not exist on a server), and a notification that says where, or why it failed."""
        import time

        folder = Path(path) if path else self.runs
        name = filename or time.strftime("screenshot-%Y%m%d-%H%M%S.svg")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(name, str(folder))
        except OSError as exc:
            self.notify(f"Could not save the screenshot in {folder}: {exc.strerror or exc}", title="Screenshot",
                        severity="error", timeout=10)
            return None
        self.notify(f"Saved to {saved}", title="Screenshot", timeout=10)
        return saved

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(f"runs: {self.runs.resolve()}"))

    async def action_quit(self) -> None:
        """Stop every job, wait for its worker (the trainer checkpoints and returns), then exit."""
        await self.home.stop_jobs()
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)  # Quit among them
        yield SystemCommand("Help", "key ?", self.action_help)
        if screen is self.home:
            yield from self.home.commands()


def run_app(file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
            watch: str | Path | None = None) -> int:
    """Open the app (``recipe-tui``) or watch a run dir (``recipe-tui watch``); returns the exit code."""
    from contextlib import nullcontext

    from recipe_tui.core.paths import inside

    from .stderr_guard import guard_stderr

    app = RecipeApp(file=file, recipe=recipe, runs=runs, watch=watch)
    # Watch mode runs no C code of its own and must not write into another process's runs folder.
    log_path = inside(runs, app.exp.name, "stderr.log") if app.exp is not None else None
    with guard_stderr(log_path) if log_path is not None else nullcontext() as guard:
        if guard is not None:
            app.driver_class = guard.driver_class
            app.error_console.file = guard.terminal  # a crash report must reach the screen, not the log
        app.run()
    if guard is not None and guard.new_bytes() > 0:
        print(f"recipe-tui: {guard.new_bytes():,} bytes of low-level stderr output were kept in {log_path}",
              file=sys.stderr)
    return app.return_code if app.return_code is not None else 0
