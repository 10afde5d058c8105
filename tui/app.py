"""recipe-tui's Textual app: it reads the recipes file (or checks the watched run dir) and opens the home
screen, ``MainScreen`` (checklist, item detail, dataset, live charts, run log, status line) or
``WatchScreen`` (a run another process writes). The screens own their jobs and panes; the app keeps
what is global: the stylesheet, help, quitting and the command palette.

Quitting is bounded: ``q`` while a job runs asks first (``QuitScreen``); then every job is stopped and waited
for, training at most ``shutdown.GRACE_S`` (it writes its checkpoint at its next step), the rest briefly. A job
still in user code after that is left behind (its thread is a daemon) and said so. Training in processes of its
own (``tui/child_run.py``) can instead be left running: the question's "detach". SIGTERM, SIGHUP and SIGINT quit
the same way without asking (SIGHUP detaches such a run: the terminal went away, nobody chose to stop it). After
the app has exited, ``run_app`` prints the session's run and how to resume it; the CLI then ends the process at
once (``shutdown.fast_exit``).
"""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from recipe_tui.core.config import apply_overrides, load_recipes

from .screens.main_screen import MainScreen
from .screens.run_screen import RunScreen
from .screens.watch_screen import WatchScreen
from .shutdown import STOP_SIGNALS, say
from .ui_state import UiState
from .widgets.help_screen import HelpScreen
from .widgets.quit_screen import QuitScreen


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
                 watch: str | Path | None = None, overrides: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.runs = Path(runs)
        self.file = file
        self.exit_lines: list[str] = []  # printed to the terminal after exit (run_app)
        self._quitting = False
        self.ui = UiState.load(self.runs)  # theme, log-y and folds of the last session
        # Bad input fails here, before the terminal switches to the app.
        if watch is not None:
            from .bridge import watch_target
            run_dir, note = watch_target(watch)
            self.exp = None
            self.ui.read_only = True  # watch mode writes nothing into the runs folder
            self.home: RunScreen = WatchScreen(run_dir, self.runs, self.ui, note)
        else:
            recipes = load_recipes(file)
            self.exp = apply_overrides(recipes.experiment(recipe), overrides)  # ``recipe-tui --set K=V``
            self.home = MainScreen(recipes, self.exp, self.runs, self.ui, tuple(overrides))

    def get_default_screen(self) -> Screen:
        return self.home

    def on_mount(self) -> None:
        if self.ui.theme in self.available_themes:
            self.theme = self.ui.theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self._signals(install=True)

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

    def on_unmount(self) -> None:
        self._signals(install=False)

    def _signals(self, install: bool) -> None:
        """SIGTERM, SIGHUP (the SSH connection dropped) and SIGINT (``kill -INT``; ctrl+c is a key here) quit like
        ``q`` answered with yes: the job is stopped, training writes its checkpoint, the app exits with 130."""
        try:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                if install:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                else:
                    loop.remove_signal_handler(sig)
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or Windows
            pass

    def _on_signal(self, sig: int) -> None:
        # SIGHUP: the terminal went away, nobody chose to stop. A run in processes of its own goes on (detached;
        # opening the app again re-attaches to it); training inside the app cannot, so it stops like the rest.
        self.call_later(self.stop_and_exit, 130, sig == getattr(signal, "SIGHUP", None))

    async def action_quit(self) -> None:
        """Quit; while a job that works runs (training, checks, the browser's loss pass), ask first: stop it and
        quit, or cancel; training in processes of its own can also be left running (detach). Watching only reads:
        it quits at once."""
        from .quitting import ASK, question

        job = self.home.jobs.current
        if job is None or job.kind not in ASK or self._quitting:
            await self.stop_and_exit()
        elif not isinstance(self.screen, QuitScreen):
            apart = job.kind == "train" and self.home.apart is not None
            self.push_screen(QuitScreen(question(job.kind, self.home.state, apart), detach=apart),
                             self._quit_answered)

    def _quit_answered(self, answer: str | None) -> None:
        if answer:
            self.call_later(self.stop_and_exit, 0, answer == "detach")

    async def stop_and_exit(self, code: int = 0, detach: bool = False) -> None:
        """Stop every job (``detach``: leave a run in processes of its own going), wait for it (bounded), keep
        what to print after exit, then exit with ``code``."""
        if self._quitting:
            return
        self._quitting = True
        self.exit_lines = await self.home.stop_jobs(self.file, detach=detach)
        self.exit(code, return_code=code)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)  # Quit among them
        yield SystemCommand("Help", "key ?", self.action_help)
        if screen is self.home:
            yield from self.home.commands()


def run_app(file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
            watch: str | Path | None = None, overrides: tuple[str, ...] = ()) -> int:
    """Open the app (``recipe-tui``) or watch a run dir (``recipe-tui watch``); returns the exit code."""
    from contextlib import nullcontext

    from recipe_tui.core.paths import inside

    from .stderr_guard import guard_stderr

    app = RecipeApp(file=file, recipe=recipe, runs=runs, watch=watch, overrides=overrides)
    # Watch mode runs no C code of its own and must not write into another process's runs folder.
    log_path = inside(runs, app.exp.name, "stderr.log") if app.exp is not None else None
    with guard_stderr(log_path) if log_path is not None else nullcontext() as guard:
        if guard is not None:
            app.driver_class = guard.driver_class
            app.error_console.file = guard.terminal  # a crash report must reach the screen, not the log
        app.run()
    for line in app.exit_lines:
        say(line)
    if guard is not None and guard.new_bytes() > 0:
        say(f"recipe-tui: {guard.new_bytes():,} bytes of low-level stderr output were kept in {log_path}")
    return app.return_code if app.return_code is not None else 0
