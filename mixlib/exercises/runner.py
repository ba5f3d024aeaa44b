"""The sandbox in which a checker runs the learner's function.

A learner's function may loop forever, raise anything, print a flood of text, change its
arguments or switch torch into another mode. The pieces here keep a check safe from all of
that; :func:`mixlib.exercises.call` puts them together around each call:

- **A time limit.** :func:`run_limited` stops the function after ``limit`` seconds; a
  :class:`Session` counts the seconds all the calls of one check have used. On the main thread
  of the main interpreter on POSIX a ``SIGALRM`` timer raises a private exception inside the
  learner's code, and again every 50 ms, so a bare ``except:`` that catches it once does not
  save the loop. Elsewhere (a worker thread, a subinterpreter, Windows) a watchdog thread
  raises it in the learner's thread (CPython's ``PyThreadState_SetAsyncExc``); on other Pythons
  a trace function checks the clock at every step (slower, best effort). A long operation in C
  is stopped only when it returns, and a loop that swallows every exception forever cannot be
  stopped from inside the process. After a time-out the kernel is usable as before.
- **Copies.** The function gets copies (:func:`copy_for_learner`) and :func:`changed` tells
  whether it changed them: the caller's tensors, arrays and models are never touched.
- **State restored.** :class:`State` snapshots the global state a function could change (torch's
  modes and defaults, and for a whole check the random generators) and puts it back.
- **Output captured.** A session's ``output`` keeps the start of what the function printed and
  only counts the rest, so a flood of text fills neither the notebook nor the memory.
- **Every exception a hint.** The time-out is caught here; :func:`mixlib.exercises.call` turns
  every other exception, ``SystemExit`` included, into a hint. Only ``KeyboardInterrupt`` (the
  notebook's stop button) passes through, and the state is restored even then.
- **Library shortcuts seen.** A :class:`CallWatcher` notes whether the learner's function ran one
  of the functions that compute the exercise's answer, however it reached them (imported by name,
  through its module, through a ``mixlib.`` re-export, under another name): a profile function
  (``sys.setprofile``, this thread only) compares the code object of every Python function called
  with theirs. It chains and then restores a profile function already set; the ``SIGALRM`` timer
  ignores an alarm that lands inside it, as it ignores one in its own epilogue.
"""

from __future__ import annotations

import contextlib
import copy
import dis
import io
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import CodeType
from typing import Any

import numpy as np
import torch
from torch import nn

#: How many lines of the learner's printed output a feedback shows, and how long each may be.
OUTPUT_LINES = 5
_OUTPUT_WIDTH = 160
_OUTPUT_KEEP = 20_000  # characters kept in memory; the rest is only counted
_REPEAT = 0.05  # seconds between repeated alarms once the limit has passed


class _TimeUp(BaseException):
    """Raised inside the learner's code by the checker's own timer: a ``BaseException``, so that
    ``except Exception`` does not swallow it, and not a ``KeyboardInterrupt``, the stop button's."""


def plural(n: int, word: str) -> str:
    """``"1 line"``, ``"3 lines"``: ``n`` and ``word``, with an ``s`` unless ``n`` is one."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- Global state and captured output ------------------------------------------------------------
class State:
    """A snapshot of the global state a learner's function could change; ``restore`` puts it back.

    With ``rng=True`` it also holds the random number generators: torch's on the CPU and, if
    initialised, on CUDA; NumPy's global one; Python's ``random``.
    """

    def __init__(self, rng: bool) -> None:
        self.dtype = torch.get_default_dtype()
        self.grad = torch.is_grad_enabled()
        self.anomaly = torch.is_anomaly_enabled()
        self.deterministic = (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled())
        self.threads = torch.get_num_threads()
        self.device = torch.get_default_device() if hasattr(torch, "get_default_device") else None
        self.rng = rng
        if rng:
            self.torch_rng = torch.random.get_rng_state()
            self.cuda_rng = (torch.cuda.get_rng_state_all()
                             if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
            self.numpy_rng = np.random.get_state()
            self.python_rng = random.getstate()

    def restore(self) -> None:
        """Put back every part of the state that differs from the snapshot."""
        if torch.get_default_dtype() != self.dtype:
            torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        if torch.is_anomaly_enabled() != self.anomaly:
            torch.set_anomaly_enabled(self.anomaly)
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != self.deterministic:
            torch.use_deterministic_algorithms(self.deterministic[0], warn_only=self.deterministic[1])
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.device is not None and torch.get_default_device() != self.device:
            torch.set_default_device(None if self.device == torch.device("cpu") else self.device)
        if self.rng:
            torch.random.set_rng_state(self.torch_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state_all(self.cuda_rng)
            np.random.set_state(self.numpy_rng)
            random.setstate(self.python_rng)


class _Capture(io.TextIOBase):
    """A text stream that keeps the start of what is written to it and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[str] = []
        self.kept_chars = 0
        self.chars = 0
        self.line_breaks = 0
        self.ends_with_newline = True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        if not text:
            return 0
        self.chars += len(text)
        self.line_breaks += text.count("\n")
        self.ends_with_newline = text.endswith("\n")
        if self.kept_chars < _OUTPUT_KEEP:
            piece = text[: _OUTPUT_KEEP - self.kept_chars]
            self.kept.append(piece)
            self.kept_chars += len(piece)
        return len(text)

    def summary(self) -> str:
        """A few lines of what was printed, and how much was left out."""
        if self.chars == 0:
            return ""
        n_lines = self.line_breaks + (0 if self.ends_with_newline else 1)
        lines = "".join(self.kept).splitlines()[:OUTPUT_LINES]
        shown = [line if len(line) <= _OUTPUT_WIDTH else line[:_OUTPUT_WIDTH] + " …" for line in lines]
        body = "\n".join("    | " + line for line in shown)
        if n_lines <= len(shown) and all(len(line) <= _OUTPUT_WIDTH for line in lines):
            return f"Your function printed {plural(n_lines, 'line')} while the checker ran it:\n{body}"
        return (f"Your function printed {plural(n_lines, 'line')} while the checker ran it; only the first "
                f"{len(shown)} are shown (the output was truncated):\n{body}")


# --- The check session and the time limit --------------------------------------------------------
class Session:
    """What one run of a checker shares between its calls of the learner's function."""

    def __init__(self, name: str, arg_names: tuple[str, ...], signature: str, time_limit: float,
                 total_limit: float) -> None:
        self.name = name
        self.arg_names = arg_names
        self.signature = signature
        self.time_limit = time_limit
        self.total_limit = total_limit
        self.used = 0.0
        self.calls = 0
        self.output = _Capture()
        self.given: tuple[Any, ...] = ()
        self.given_kwargs: dict[str, Any] = {}
        #: The functions whose call is a library shortcut (code object -> dotted name and what it computes).
        self.shortcuts: Mapping[CodeType, tuple[str, str]] = {}
        #: The shortcut the learner's function called, once one was seen.
        self.shortcut: tuple[str, str] | None = None


_session: Session | None = None


def current_session() -> Session | None:
    """The session of the check now running, or ``None`` outside a check."""
    return _session


@contextlib.contextmanager
def checking(name: str, arg_names: tuple[str, ...], signature: str, time_limit: float, budget: float,
             shortcuts: Mapping[CodeType, tuple[str, str]] | None = None) -> Iterator[Session]:
    """Run the body as one check: a fresh :class:`Session`, and the global state restored after it.

    ``time_limit`` is the limit of one call; all the calls together may run for ``budget`` seconds,
    or for ``time_limit`` if that is longer. ``shortcuts`` maps the code objects of the functions
    that compute the answer to their name and what they compute (see :class:`CallWatcher`).
    """
    global _session
    outer = _session
    limit = float(time_limit)
    if not limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    session = Session(name, arg_names, signature, limit, max(float(budget), limit))
    session.shortcuts = dict(shortcuts or {})
    state = State(rng=True)
    _session = session
    try:
        yield session
    finally:
        _session = outer
        state.restore()


def alarm_usable() -> bool:
    """Whether a ``SIGALRM`` timer can stop the learner's function here (POSIX, main thread)."""
    return (hasattr(signal, "setitimer") and sys.platform != "win32"
            and threading.current_thread() is threading.main_thread())


def _run_with_alarm(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a ``SIGALRM`` timer; ``state["fired"]`` tells whether the timer went off."""
    state["armed"] = False

    def on_alarm(signum: int, frame: Any) -> None:
        # Ignore an alarm that lands in this function's own prologue or epilogue, or in the profile
        # function of a CallWatcher (which also runs there); the next alarm, 50 ms later, lands elsewhere.
        if state["armed"] and (frame is None or frame.f_code not in _QUIET_CODES):
            state["fired"] = True
            raise _TimeUp

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main interpreter
        return _run_with_watchdog(fn, args, kwargs, limit, state)
    started = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, limit, _REPEAT)
    try:
        state["armed"] = True
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        state["armed"] = False
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if old_delay > 0:  # somebody else's timer was running: let it go on
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 1e-3), old_interval)


_ALARM_CODE = _run_with_alarm.__code__


# --- Calls of given functions ----------------------------------------------------------------------
def code_objects(fn: Any) -> set[CodeType]:
    """The code objects that run when ``fn`` is called, and that belong to it alone.

    Follows bound, class and static methods (``__func__``), ``functools.partial`` (``func``),
    properties (``fget``) and wrappers made with ``functools.wraps`` or ``functools.lru_cache``
    (``__wrapped__``) down to the function they wrap, whose code is the one that counts: a
    wrapper's own code is shared by every function the same decorator wraps
    (``contextlib.contextmanager``, ``torch.no_grad``), so it would match calls of all of them.
    Empty for a function written in C.
    """
    codes: set[CodeType] = set()
    seen: set[int] = set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        inner = [getattr(f, attr, None) for attr in ("__func__", "__wrapped__", "func", "fget")]
        if any(g is not None for g in inner):
            todo += inner
            continue
        code = getattr(f, "__code__", None)
        if isinstance(code, CodeType):
            codes.add(code)
    return codes


class CallWatcher:
    """A context manager that notes whether the code inside it calls one of some given functions.

    ``codes`` maps code objects (see :func:`code_objects`) to what ``hit`` should hold once
    one of them runs: the first seen. It works with ``sys.setprofile``, in the current thread only,
    and costs nothing when ``codes`` is empty. A profile function already set (a profiler written in
    Python) keeps receiving every event and is put back on exit; under a profiler written in C,
    which cannot be chained, the watcher stays off.
    """

    def __init__(self, codes: Mapping[CodeType, Any]) -> None:
        self.codes = codes
        self.hit: Any = None
        self._previous: Any = None
        self._active = False

    def __enter__(self) -> CallWatcher:
        if self.codes:
            previous = sys.getprofile()
            if previous is None or callable(previous):
                self._previous, self._active = previous, True
                sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self._active = False
            sys.setprofile(self._previous)

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" and self.hit is None:
            self.hit = self.codes.get(frame.f_code)
        if self._previous is not None:
            self._previous(frame, event, arg)


#: Frames in which an alarm is not raised: the alarm runner's own, and the call watcher's profile function.
_QUIET_CODES = frozenset({_ALARM_CODE, CallWatcher._profile.__code__})


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def async_exc_usable() -> bool:
    """Whether a watchdog thread can raise the time-out in the learner's thread (CPython only)."""
    try:
        import ctypes

        return sys.implementation.name == "cpython" and hasattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc")
    except (ImportError, AttributeError):
        return False


def _run_with_watchdog(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` while a watchdog thread raises the time-out in this thread at the deadline (CPython)."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(limit):
            return
        while True:
            with lock:
                if done.is_set():
                    return
                state["fired"] = True
                _set_async_exc(thread_id, _TimeUp)
            if done.wait(_REPEAT):
                return

    threading.Thread(target=watchdog, name="exercise-time-limit", daemon=True).start()
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        while True:  # stop the watchdog, then flush a time-out it may have left pending
            try:
                with lock:
                    done.set()
                _flush_async_exc(thread_id)
                break
            except _TimeUp:
                continue


class _Flush(BaseException):
    """A harmless asynchronous exception that replaces a pending time-out and is caught at once."""


def _flush_async_exc(thread_id: int) -> None:
    """Drop an asynchronous exception pending in this thread, and CPython's flag that says one is pending.

    Clearing it with ``PyThreadState_SetAsyncExc(id, NULL)`` would leave that flag set (CPython 3.11
    resets it only when an exception is delivered), and then every function call made under a profile
    or trace function (a :class:`CallWatcher`, a debugger, coverage) spins forever on its first
    instruction. So a harmless exception replaces the pending one and is delivered here, in a loop
    (whose backward jumps check for it), and caught.
    """
    try:
        _set_async_exc(thread_id, _Flush)
        for _ in range(1_000_000):
            pass
    except _Flush:
        return


def _run_with_trace(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a trace function that checks the clock at each opcode (the last resort)."""
    deadline = time.monotonic() + limit

    def local(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            state["fired"] = True
            raise _TimeUp
        return local

    def start(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local(frame, event, arg)

    previous = sys.gettrace()
    sys.settrace(start)
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        sys.settrace(previous)


def run_limited(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn(*args, **kwargs)`` for at most ``limit`` seconds; ``state["fired"]`` says if it was stopped.

    A stopped function returns ``None``; any other exception it raises goes to the caller.
    """
    state["fired"] = False
    try:
        if alarm_usable():
            return _run_with_alarm(fn, args, kwargs, limit, state)
        if async_exc_usable():
            return _run_with_watchdog(fn, args, kwargs, limit, state)
        return _run_with_trace(fn, args, kwargs, limit, state)
    except _TimeUp:  # raised in a runner's own epilogue, after the function returned
        state["fired"] = True
        return None


# --- Copies of the arguments, changes made to them, and stubs ------------------------------------
def copy_for_learner(value: Any) -> Any:
    """A deep copy for the learner: tensors, arrays, models and containers copied, generators shared."""
    if isinstance(value, torch.Generator):
        return value
    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        return out.requires_grad_(value.requires_grad) if out.is_floating_point() or out.is_complex() else out
    if isinstance(value, (nn.Module, np.ndarray)):
        return copy.deepcopy(value)
    if type(value) in (tuple, list):
        return type(value)(copy_for_learner(v) for v in value)
    if type(value) is dict:
        return {k: copy_for_learner(v) for k, v in value.items()}
    return value


def _same_tensor(a: torch.Tensor, b: object) -> bool:
    if not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    a64, b64 = a.detach().cpu(), b.detach().cpu()
    if a64.is_floating_point() or b64.is_floating_point():
        a64, b64 = a64.double(), b64.double()
    return bool(torch.equal(a64, b64))


def changed(original: Any, given: Any) -> str | None:
    """``None`` if the learner's copy still equals the original, else what changed: ``"tensor"``
    (or array), ``"model"`` (parameters or buffers) or ``"container"`` (length or keys)."""
    if isinstance(original, torch.Tensor):
        return None if _same_tensor(original, given) else "tensor"
    if isinstance(original, np.ndarray):
        same = (isinstance(given, np.ndarray) and given.shape == original.shape
                and bool(np.array_equal(original, given)))
        return None if same else "tensor"
    if isinstance(original, nn.Module):
        before, after = original.state_dict(), given.state_dict() if isinstance(given, nn.Module) else {}
        if before.keys() != after.keys() or not all(_same_tensor(before[k], after[k]) for k in before):
            return "model"
        return None
    if type(original) in (tuple, list):
        if type(given) is not type(original) or len(given) != len(original):
            return "container"
        return next((c for c in map(changed, original, given) if c is not None), None)
    if type(original) is dict:
        if type(given) is not dict or given.keys() != original.keys():
            return "container"
        return next((c for k in original if (c := changed(original[k], given[k])) is not None), None)
    return None


_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE"}


def is_stub(answer: Callable[..., Any]) -> bool:
    """Whether ``answer`` is an empty stub: a body of ``...``, ``pass`` or a docstring only."""
    code = getattr(answer, "__code__", None)
    if code is None:
        return False
    try:
        return all(ins.opname in _STUB_OPS for ins in dis.get_instructions(code))
    except Exception:  # an unusual code object: not a stub we recognise
        return False
