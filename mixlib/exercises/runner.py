"""The sandbox in which a checker runs the learner's function.

A learner's function may loop forever, raise anything, print a flood of text, change its
arguments, switch torch into another mode, replace a library function or return an object
whose methods do any of that. The pieces here keep a check safe from all of that *by
accident*, and from most of it on purpose; :func:`mixlib.exercises.call` puts them together
around each call:

- **A time limit.** :func:`run_limited` stops the function after ``limit`` seconds; a
  :class:`Session` counts the seconds all the calls of one check have used. On the main thread
  of the main interpreter on POSIX a ``SIGALRM`` timer raises a private exception inside the
  learner's code, and again every 50 ms, so a bare ``except:`` that catches it once does not
  save the loop; ``SIGALRM`` is unblocked before the timer is armed, and a watchdog thread runs
  beside the timer, so a function that ignores or blocks ``SIGALRM``, replaces its handler or
  disarms the timer is still stopped (a moment later). Elsewhere (a worker thread, a
  subinterpreter, Windows) the watchdog thread alone raises it in the learner's thread (CPython's
  ``PyThreadState_SetAsyncExc``); on other Pythons a trace function checks the clock at every
  step (slower, best effort). A long operation in C is stopped only when it returns (its real
  duration is reported), and a loop that swallows every exception forever cannot be stopped
  from inside the process. After a time-out the kernel is usable as before.
- **Copies.** The function gets copies (:func:`copy_for_learner`) and :func:`changed` tells
  whether it changed them: the caller's tensors, arrays and models are never touched.
- **Plain values back.** What the function returns is converted, inside the time limit, to
  plain Python, NumPy and torch values (:func:`plain`): tensor subclasses are stripped (their
  ``__torch_function__`` cannot answer the checker's comparisons), subclasses of ``int``,
  ``float``, ``str``, ``tuple``, ``list`` and ``dict`` become the built-in type, other numbers
  become ``float`` and any other object a stand-in of the same name with no methods of its own.
  After that, no code of the learner's runs when the checker reads the value.
- **State restored.** :class:`State` snapshots the global state a function could change
  (torch's modes, defaults, flags and print options, NumPy's error handling and print options,
  the recursion limit, signal handlers and the signal mask, the working directory, the
  environment, ``sys.path`` and more; for a whole check also the random generators) and puts
  back, and names, what changed. :class:`Guard` does the same for the functions and classes the
  checkers rely on: a function that replaces ``math.isclose`` or ``torch.allclose``, a method of
  ``torch.Tensor`` or a global of a checker module gets them put back and a failing verdict;
  the comparison functions are bound when this module is imported, and a check runs with those
  even if the notebook replaced them before.
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
  ignores an alarm that lands inside it, as it ignores one in its own epilogue. It also notes
  whether the function drew random numbers (a Monte Carlo estimate where an exact value is asked).

What this cannot do: the learner's code runs in the checker's own process, so a determined
learner can still read the expected values from the checker's stack frames (``sys._getframe``),
write memory with ``ctypes``, patch the checker before the check starts, leave a thread running
that patches it later, or register autograd hooks that run when a checker differentiates the
returned tensor. The checks hold against honest mistakes and against the easy tricks.
"""

from __future__ import annotations

import _signal as _signal_module
import _thread
import builtins
import contextlib
import copy
import dis
import gc
import io
import math
import numbers
import operator
import os
import random
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

#: How many lines of the learner's printed output a feedback shows, and how long each may be.
OUTPUT_LINES = 5
_OUTPUT_WIDTH = 160
_OUTPUT_KEEP = 20_000  # characters kept in memory; the rest is only counted
_REPEAT = 0.05  # seconds between repeated alarms once the limit has passed
_GRACE = 0.25  # seconds after the limit at which the watchdog beside the alarm steps in
#: A time-out that took effect this many seconds after it was due was held up by one long operation in C
#: (a loop is stopped at once by the alarm, or by the watchdog ``_GRACE`` seconds later).
LONG_DELAY = _GRACE + 0.5

# --- Functions bound at import, so that a learner's function that replaces them changes nothing here
_monotonic = time.monotonic
_get_ident = _thread.get_ident
_start_new_thread = _thread.start_new_thread
_allocate_lock = _thread.allocate_lock
_MAIN_IDENT = threading.main_thread().ident
_setprofile, _getprofile = sys.setprofile, sys.getprofile
_settrace, _gettrace = sys.settrace, sys.gettrace
_signal = getattr(signal, "signal", None)
_getsignal = getattr(_signal_module, "getsignal", None)  # the C function: signal.getsignal wraps it in Python
_setitimer = getattr(signal, "setitimer", None)
_sigmask = getattr(signal, "pthread_sigmask", None)
_SIGALRM = getattr(signal, "SIGALRM", None)
_disable_torch_function = torch._C.DisableTorchFunctionSubclass
_as_subclass = torch.Tensor.as_subclass
_dispatch_keys = getattr(torch._C, "_dispatch_keys", None)
_PYTHON_KEY = getattr(getattr(torch._C, "DispatchKey", None), "Python", None)


class _TimeUp(BaseException):
    """Raised inside the learner's code by the checker's own timer: a ``BaseException``, so that
    ``except Exception`` does not swallow it, and not a ``KeyboardInterrupt``, the stop button's."""


def plural(n: int, word: str) -> str:
    """``"1 line"``, ``"3 lines"``: ``n`` and ``word``, with an ``s`` unless ``n`` is one."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _settle(step: Callable[[], None], tries: int = 100) -> None:
    """Run ``step`` (idempotent) until it completes: an exception that a stray alarm, a late time-out or a
    learner's signal handler raises in it is swallowed and the step run again; a ``KeyboardInterrupt`` is
    raised once the step is done."""
    interrupted: KeyboardInterrupt | None = None
    while tries > 0:  # no built-in function here: a learner's function may have replaced them all
        tries -= 1
        try:
            step()
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
        except BaseException:  # noqa: S112 (a stray alarm or time-out: do the step again)
            continue
    if interrupted is not None:
        raise interrupted


# --- Global state --------------------------------------------------------------------------------
_UNKNOWN = object()


@dataclass
class _Setting:
    """One piece of global state: how to read it, how to put it back (``None``: it cannot be), and its name."""

    label: str
    get: Callable[[], Any]
    put: Callable[[Any], None] | None
    main_thread_only: bool = False
    #: What of the current value counts when a library was imported meanwhile, given it and the saved one.
    after_import: Callable[[Any, Any], Any] | None = None


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _on_main_thread() -> bool:
    return _get_ident() == _MAIN_IDENT


def _torch_settings() -> list[_Setting]:
    out = [
        _Setting("torch's default dtype", torch.get_default_dtype, torch.set_default_dtype),
        _Setting("grad mode (torch.set_grad_enabled)", torch.is_grad_enabled, torch.set_grad_enabled),
        _Setting("inference mode", torch.is_inference_mode_enabled, None),
        _Setting("anomaly detection", lambda: (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
                 lambda v: torch.set_anomaly_enabled(v[0], v[1])),
        _Setting("deterministic-algorithm mode",
                 lambda: (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
                 lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1])),
        _Setting("torch's number of threads", torch.get_num_threads, torch.set_num_threads),
        _Setting("torch.set_warn_always", torch.is_warn_always_enabled, torch.set_warn_always),
        _Setting("torch's float32 matmul precision", torch.get_float32_matmul_precision,
                 torch.set_float32_matmul_precision),
    ]
    if hasattr(torch, "get_default_device"):
        out.insert(1, _Setting("torch's default device", torch.get_default_device,
                               lambda d: torch.set_default_device(None if d == torch.device("cpu") else d)))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        try:
            torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev)
        except Exception:  # an older torch: no per-device autocast state to read
            continue
        out.append(_Setting(
            f"autocast on {dev}",
            lambda dev=dev: (torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev)),
            lambda v, dev=dev: (torch.set_autocast_enabled(dev, v[0]), torch.set_autocast_dtype(dev, v[1]))))
    flags: list[tuple[Any, str]] = []
    for owner, names in (
            ("cudnn", ("enabled", "benchmark", "deterministic", "allow_tf32", "fp32_precision")),
            ("cuda.matmul", ("allow_tf32", "allow_fp16_reduced_precision_reduction",
                             "allow_bf16_reduced_precision_reduction", "fp32_precision")),
            ("mkldnn", ("enabled", "deterministic", "fp32_precision")), ("mkldnn.matmul", ("fp32_precision",)),
            ("opt_einsum", ("enabled", "strategy")), ("", ("fp32_precision",))):
        obj: Any = torch.backends
        try:
            for part in filter(None, owner.split(".")):
                obj = getattr(obj, part)
            for name in names:
                getattr(obj, name)
                flags.append((obj, name))
        except Exception:  # a flag this torch does not have
            continue

    def put_flags(values: tuple) -> None:
        for (obj, name), value in zip(flags, values, strict=True):
            if not _same(getattr(obj, name), value):
                setattr(obj, name, value)

    out.append(_Setting("torch's backend flags (torch.backends)",
                        lambda: tuple(getattr(o, n) for o, n in flags), put_flags))
    sdp = [(get, put) for get, put in (("flash_sdp_enabled", "enable_flash_sdp"),
                                       ("mem_efficient_sdp_enabled", "enable_mem_efficient_sdp"),
                                       ("math_sdp_enabled", "enable_math_sdp"),
                                       ("cudnn_sdp_enabled", "enable_cudnn_sdp"))
           if hasattr(torch.backends.cuda, get) and hasattr(torch.backends.cuda, put)]
    if sdp:
        out.append(_Setting(
            "torch's attention backends (torch.backends.cuda.enable_*_sdp)",
            lambda: tuple(getattr(torch.backends.cuda, g)() for g, _ in sdp),
            lambda v: [getattr(torch.backends.cuda, p)(x) for (_, p), x in zip(sdp, v, strict=True)]))
    opts = torch._tensor_str.PRINT_OPTS
    out.append(_Setting("torch's print options (torch.set_printoptions)", lambda: tuple(vars(opts).items()),
                        lambda v: [setattr(opts, k, x) for k, x in v]))
    if hasattr(torch._C, "_len_torch_function_stack"):
        out.append(_Setting("a torch function mode left active", torch._C._len_torch_function_stack,
                            lambda n: _pop_modes(torch._C._len_torch_function_stack,
                                                 torch._C._pop_torch_function_stack, n)))
    if hasattr(torch._C, "_len_torch_dispatch_stack"):
        out.append(_Setting("a torch dispatch mode left active", torch._C._len_torch_dispatch_stack,
                            lambda n: _pop_modes(torch._C._len_torch_dispatch_stack,
                                                 torch._C._pop_torch_dispatch_stack, n)))
    hooks = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    pop_hooks = getattr(torch._C._autograd, "_pop_saved_tensors_default_hooks", None)
    if hooks is not None and pop_hooks is not None:
        def top() -> Any:
            pair = hooks(False)
            return None if pair is None else tuple(id(h) for h in pair)

        def put_hooks(value: Any) -> None:
            for _ in range(100):
                if top() == value:
                    return
                pop_hooks()
            raise RuntimeError("saved-tensor hooks left in place")

        out.append(_Setting("autograd's saved-tensor hooks", top, put_hooks))
    return out


def _pop_modes(length: Callable[[], int], pop: Callable[[], Any], n: int) -> None:
    if length() < n:
        raise RuntimeError("a mode was removed")
    while length() > n:
        pop()


def _environ() -> tuple[Any, dict[str, str]]:
    return os.environ, dict(os.environ)


def _put_environ(value: tuple[Any, dict[str, str]]) -> None:
    obj, saved = value
    os.environ = obj  # noqa: B003 (put back the object itself, if the function rebound it)
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, text in saved.items():
        if os.environ.get(key) != text:
            os.environ[key] = text


def _environ_without_additions(now: tuple[Any, dict[str, str]], saved: tuple[Any, dict[str, str]],
                               ) -> tuple[Any, dict[str, str]]:
    """The environment as it is, less the variables added since: a library imported for the first time during
    the call may set its own (torch._dynamo sets TORCHINDUCTOR_CACHE_DIR)."""
    return now[0], {k: v for k, v in now[1].items() if k in saved[1]}


def _list_setting(label: str, name: str) -> _Setting:
    def get() -> tuple[Any, list]:
        obj = getattr(sys, name)
        return obj, list(obj)

    def put(value: tuple[Any, list]) -> None:
        obj, items = value
        obj[:] = items
        setattr(sys, name, obj)

    return _Setting(label, get, put)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _signal_settings() -> list[_Setting]:
    if _getsignal is None or _signal is None:
        return []
    out = []
    for sig in sorted(signal.valid_signals()):
        try:
            name = signal.Signals(sig).name
        except ValueError:  # a real-time signal without a name
            continue
        if name in ("SIGKILL", "SIGSTOP"):
            continue
        label = {"SIGINT": "the handler of SIGINT (the notebook's stop button)",
                 "SIGALRM": "the handler of SIGALRM (the checker's timer)"}.get(name, f"the handler of {name}")

        def put(handler: Any, sig: int = sig) -> None:
            if handler is not None:
                _signal(sig, handler)

        out.append(_Setting(label, lambda sig=sig: _getsignal(sig), put, main_thread_only=True))
    if _sigmask is not None:
        out.append(_Setting("the blocked signals (signal.pthread_sigmask)",
                            lambda: frozenset(_sigmask(signal.SIG_BLOCK, [])),
                            lambda mask: _sigmask(signal.SIG_SETMASK, mask)))
    return out


def _python_settings() -> list[_Setting]:
    return [
        _Setting("the recursion limit (sys.setrecursionlimit)", sys.getrecursionlimit, sys.setrecursionlimit),
        _Setting("the working directory (os.chdir)", _cwd, os.chdir),
        _Setting("the environment variables (os.environ)", _environ, _put_environ,
                 after_import=_environ_without_additions),
        _list_setting("the module search path (sys.path)", "path"),
        _Setting("Python's hooks (sys.displayhook, sys.excepthook, ...)",
                 lambda: (sys.displayhook, sys.excepthook, sys.breakpointhook, sys.unraisablehook),
                 lambda v: (setattr(sys, "displayhook", v[0]), setattr(sys, "excepthook", v[1]),
                            setattr(sys, "breakpointhook", v[2]), setattr(sys, "unraisablehook", v[3]))),
        _Setting("sys.stdout or sys.stderr", lambda: (sys.stdout, sys.stderr),
                 lambda v: (setattr(sys, "stdout", v[0]), setattr(sys, "stderr", v[1]))),
        _Setting("a trace function (sys.settrace)", _gettrace, _settrace),
        _Setting("a profile function (sys.setprofile)", _getprofile, _setprofile),
        _Setting("garbage collection (gc.disable)", gc.isenabled, lambda on: gc.enable() if on else gc.disable()),
        _Setting("the thread switch interval", sys.getswitchinterval, sys.setswitchinterval),
        _Setting("the integer string conversion limit", sys.get_int_max_str_digits, sys.set_int_max_str_digits),
        _Setting("NumPy's print options (np.set_printoptions)", lambda: tuple(np.get_printoptions().items()),
                 lambda v: np.set_printoptions(**dict(v))),
        _Setting("NumPy's floating-point error handling (np.seterr)",
                 lambda: (tuple(sorted(np.geterr().items())), np.geterrcall()),
                 lambda v: (np.seterr(**dict(v[0])), np.seterrcall(v[1]))),
    ]


_SETTINGS: list[_Setting] = _torch_settings() + _python_settings() + _signal_settings()


class State:
    """A snapshot of the global state a learner's function could change; ``restore`` puts it back.

    It covers torch's default dtype and device, grad, inference and anomaly modes, deterministic
    algorithms, threads, autocast, matmul precision, backend flags, print options, function and dispatch
    modes and saved-tensor hooks; NumPy's print options and error handling; the recursion limit, the
    working directory, the environment, ``sys.path``, Python's hooks (``sys.displayhook``, ...), trace and
    profile functions, garbage collection; the signal handlers (on the main thread) and the signal mask.
    With ``rng=True`` it also holds the random number generators: torch's on the CPU and, if
    initialised, on CUDA; NumPy's global one; Python's ``random``.
    """

    def __init__(self, rng: bool) -> None:
        self.modules = len(sys.modules)
        self.values = []
        for setting in _SETTINGS:
            try:
                self.values.append(setting.get())
            except Exception:  # unreadable here: leave it alone
                self.values.append(_UNKNOWN)
        self.rng = rng
        if rng:
            self.torch_rng = torch.random.get_rng_state()
            self.cuda_rng = (torch.cuda.get_rng_state_all()
                             if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
            self.numpy_rng = np.random.get_state()
            self.python_rng = random.getstate()

    def restore(self) -> list[str]:
        """Put back every part of the state that differs from the snapshot; return what differed, each
        with " (which could not be put back)" where it could not be."""
        changed: list[tuple[_Setting, Any]] = []
        imported = len(sys.modules) != self.modules
        for setting, saved in zip(_SETTINGS, self.values, strict=True):
            if saved is _UNKNOWN:
                continue
            try:
                now = setting.get()
                if imported and setting.after_import is not None:
                    now = setting.after_import(now, saved)
            except Exception:
                now = _UNKNOWN
            if not _same(now, saved):
                changed.append((setting, saved))
        names = []
        for setting, saved in changed:
            done = False
            if setting.put is not None and (_on_main_thread() or not setting.main_thread_only):
                try:
                    if not _same(setting.get(), saved):  # putting back an earlier one may have fixed it
                        setting.put(saved)
                    done = _same(setting.get(), saved)
                except Exception:
                    done = False
            names.append(setting.label if done else f"{setting.label} (which could not be put back)")
        if self.rng:
            torch.random.set_rng_state(self.torch_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state_all(self.cuda_rng)
            np.random.set_state(self.numpy_rng)
            random.setstate(self.python_rng)
        return names


# --- Functions, classes and modules a learner could patch ------------------------------------------
#: The comparison and conversion functions the checkers rely on, bound at import: a check runs with these.
_PRISTINE_NAMES: dict[Any, tuple[str, ...]] = {
    math: ("isclose", "isfinite", "isnan", "isinf", "sqrt", "fabs", "log", "exp", "fsum"),
    builtins: ("abs", "all", "any", "bool", "callable", "dict", "enumerate", "float", "getattr", "hasattr", "int",
               "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next", "range", "repr",
               "round", "setattr", "sorted", "str", "sum", "tuple", "type", "zip"),
    torch: ("allclose", "isclose", "equal", "isfinite", "isnan", "is_tensor", "is_floating_point", "is_complex",
            "tensor", "as_tensor", "from_numpy", "stack", "cat", "argsort", "arange", "zeros", "ones"),
    np: ("allclose", "isclose", "array_equal", "asarray", "array", "isfinite", "isnan", "iscomplexobj",
         "mean", "std", "var"),
}
_PRISTINE = [(owner, name, getattr(owner, name)) for owner, names in _PRISTINE_NAMES.items() for name in names
             if hasattr(owner, name)]
_PRISTINE_CLASSES = [(cls, dict(vars(cls))) for cls in (torch.Tensor, nn.Module)]
_MISSING = object()
_BUILTINS = builtins.__dict__
#: Names that change by themselves: the registry of warnings already shown from a module.
_UNWATCHED = frozenset({"__warningregistry__"})


def _label(owner: Any) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}".replace("torch._tensor.", "torch.").replace(
            "torch.nn.modules.module.", "torch.nn.")
    return type(owner).__name__


def _use_pristine() -> list[tuple[Any, str, Any]]:
    """Put back, for one check, the comparison functions and the ``torch.Tensor`` and ``nn.Module`` methods
    as they were at import; return what was replaced, to hand back with ``_put_back`` afterwards."""
    swapped = []
    for owner, name, value in _PRISTINE:
        now = vars(owner).get(name, _MISSING)
        if now is not value:
            swapped.append((owner, name, now))
            setattr(owner, name, value)
    for cls, saved in _PRISTINE_CLASSES:  # methods replaced or removed (names added later are torch's own, too)
        now = vars(cls)
        for name, value in saved.items():
            if now.get(name, _MISSING) is not value:
                swapped.append((cls, name, now.get(name, _MISSING)))
                setattr(cls, name, value)
    return swapped


def _put_back(swapped: list[tuple[Any, str, Any]]) -> None:
    for owner, name, value in reversed(swapped):
        with contextlib.suppress(Exception):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def _is_mixlib(name: str) -> bool:
    return name == "mixlib" or name.startswith("mixlib.")


_watched_cache: dict[str, Any] = {}


def watched_and_functions() -> tuple[list[tuple[Any, bool]], list[tuple[str, FunctionType]]]:
    """:func:`watched` and the functions in it (``_functions``), found again only when a module was imported
    since the last time."""
    key = len(sys.modules)
    if _watched_cache.get("key") != key:
        owners = watched()
        _watched_cache.update(key=key, owners=owners, functions=_functions(owners))
    return _watched_cache["owners"], _watched_cache["functions"]


def watched() -> list[tuple[Any, bool]]:
    """The namespaces a :class:`Guard` watches, each with whether a name added to it counts as a patch.

    They are the modules of ``mixlib`` (the checkers among them), the modules and ``mixlib`` classes
    their globals name (``math``, ``numpy``, ``torch``, ``torch.nn.functional``, ...), ``builtins``,
    ``torch.Tensor`` and ``torch.nn.Module``. In a class or a ``mixlib`` module an added name can shadow
    another (a method of a base class, a built-in), so it counts; a new submodule does not.
    """
    out: list[tuple[Any, bool]] = [(builtins, False), (torch.Tensor, True), (nn.Module, True)]
    seen = {id(builtins), id(torch.Tensor), id(nn.Module), id(sys)}
    mix = [m for name, m in list(sys.modules.items()) if _is_mixlib(name) and isinstance(m, ModuleType)]
    for module in mix:
        seen.add(id(module))
        out.append((module, True))
    for module in mix:
        for value in list(vars(module).values()):
            if id(value) in seen:
                continue
            if isinstance(value, ModuleType):
                seen.add(id(value))
                out.append((value, False))
            elif isinstance(value, type) and _is_mixlib(getattr(value, "__module__", "") or ""):
                seen.add(id(value))
                out.append((value, True))
    return out


def _functions(owners: list[tuple[Any, bool]]) -> list[tuple[str, FunctionType]]:
    """The Python functions found in the watched ``mixlib`` namespaces (and what they wrap), by name."""
    found: list[tuple[str, FunctionType]] = []
    seen: set[int] = set()
    for owner, _ in owners:
        if not _is_mixlib(getattr(owner, "__module__", None) or getattr(owner, "__name__", "")):
            continue
        for key, value in list(vars(owner).items()):
            todo = [value]
            while todo:
                f = todo.pop()
                if f is None or id(f) in seen:
                    continue
                if isinstance(f, (staticmethod, classmethod)):
                    todo.append(f.__func__)
                    continue
                if isinstance(f, property):
                    todo += [f.fget, f.fset, f.fdel]
                    continue
                if not isinstance(f, FunctionType) and not callable(f):
                    continue
                seen.add(id(f))
                wrapped = vars(f).get("__wrapped__") if hasattr(f, "__dict__") else None
                if wrapped is not None:
                    todo.append(wrapped)
                if type(f) is FunctionType:
                    found.append((f"{_label(owner)}.{key}", f))
    return found


def _library_function(value: Any) -> bool:
    """Whether ``value`` is a function written in a library's own file (read without running its code)."""
    kind = type(value)
    if kind is FunctionType:
        return _is_library_file(value.__code__.co_filename)
    if kind is type(len):  # a builtin: where its module is
        module = sys.modules.get(value.__module__ or "")
        filename = getattr(module, "__file__", None) if module is not None else None
        return isinstance(filename, str) and _is_library_file(filename)
    return False


def _cells(f: FunctionType) -> tuple:
    out = []
    for cell in f.__closure__ or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            out.append(_MISSING)
    return tuple(out)


class Guard:
    """A snapshot of the watched namespaces (:func:`watched`), the code, defaults and closures of the
    ``mixlib`` functions in them, and of ``extra`` objects' attributes; :meth:`restore` puts back what
    changed and names it."""

    def __init__(self, owners: list[tuple[Any, bool]], functions: list[tuple[str, FunctionType]],
                 extra: tuple[Any, ...] = ()) -> None:
        self.modules = len(sys.modules)
        self.builtins = _BUILTINS.copy()
        self.fixed: list[str] = []
        self.spaces = []
        for owner, strict in [*owners, *((e, True) for e in extra)]:
            d = vars(owner)
            self.spaces.append((owner, strict, list(d), list(d.values())))
        self.functions = [(name, f, f.__code__, f.__defaults__, f.__kwdefaults__, f.__closure__,
                           _cells(f) if f.__closure__ else ()) for name, f in functions]
        #: What :func:`put_own_back` puts back first, before any of the checker's own code runs: the code and
        #: defaults of the ``mixlib`` functions (the checker's own among them), and the globals of the modules
        #: ``mixlib.exercises`` and ``mixlib.exercises.runner`` and the attributes of their classes. Tuples all
        #: through, which the caller keeps while the learner's code runs.
        self.own = (tuple((f, name, code, defaults, kwdefaults) for name, f, code, defaults, kwdefaults, *_
                          in self.functions), _own_spaces())

    def fix_builtins(self) -> None:
        """Put back the built-in functions first, with nothing but the methods of their dict: the rest of the
        checker's code needs them."""
        for key, value in self.builtins.items():
            if _BUILTINS.get(key, _MISSING) is not value:
                _BUILTINS[key] = value
                self.fixed.append(f"builtins.{key}")

    def restore(self) -> list[str]:
        """Put back what changed since the snapshot; return its names (``math.isclose``, ...)."""
        self.fix_builtins()
        names: list[str] = list(self.fixed)
        imported = len(sys.modules) != self.modules
        for owner, strict, keys, values in self.spaces:
            d = vars(owner)
            if len(d) == len(keys) and all(map(operator.is_, d, keys)) and all(map(operator.is_, d.values(), values)):
                continue
            names += self._restore_space(owner, strict, dict(zip(keys, values, strict=True)), imported)
        for name, f, code, defaults, kwdefaults, closure, cells in self.functions:
            if f.__code__ is not code or f.__defaults__ is not defaults or f.__kwdefaults__ is not kwdefaults \
                    or (closure and any(map(operator.is_not, _cells(f), cells))):
                names.append(f"{name} (its code, defaults or closure)")
                with contextlib.suppress(Exception):
                    f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
                    for cell, value in zip(f.__closure__ or (), cells, strict=True):
                        if value is _MISSING:
                            with contextlib.suppress(ValueError):
                                del cell.cell_contents
                        else:
                            cell.cell_contents = value
        return names

    @staticmethod
    def _restore_space(owner: Any, strict: bool, saved: dict[str, Any], imported: bool) -> list[str]:
        d = vars(owner)
        now = dict(d)
        names = []
        label = _label(owner)
        is_object = not isinstance(owner, (ModuleType, type))
        # A library imported for the first time during the call may wrap a function of another (torch._dynamo
        # wraps torch.manual_seed): a replacement written in a library's own file is then left alone.
        lenient = imported and not _is_mixlib(getattr(owner, "__name__", "") if isinstance(owner, ModuleType)
                                               else getattr(owner, "__module__", "") or "")
        for key in saved:
            if lenient and key in now and _library_function(now[key]):
                continue
            if now.get(key, _MISSING) is not saved[key] and key not in _UNWATCHED:
                names.append(f"{label}.{key}")
                with contextlib.suppress(Exception):
                    if isinstance(d, dict):
                        d[key] = saved[key]
                    else:
                        setattr(owner, key, saved[key])
        for key in now:
            if key in saved or key in _UNWATCHED or not strict or (isinstance(now[key], ModuleType) and not is_object):
                continue
            names.append(f"{label}.{key}")
            with contextlib.suppress(Exception):
                if isinstance(d, dict):
                    del d[key]
                else:
                    delattr(owner, key)
        return names


# --- Captured output -----------------------------------------------------------------------------
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
        text = str.__str__(text) if isinstance(text, str) else str(text)
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
        #: The global state the learner's code changed and the checker put back (labels, in order).
        self.restored: list[str] = []
        #: What the learner's code replaced in the watched functions, classes and modules (put back).
        self.patched: list[str] = []
        #: What the notebook had replaced before the check (the check ran with the originals).
        self.swapped: list[str] = []
        #: How the learner's function drew random numbers, once seen (say, "torch._standard_gamma").
        self.random: str | None = None
        #: Whether every floating-point input of the last call was float64 (Python floats included).
        self.float64_inputs = False
        #: Whether the last call returned a float32 (or lower precision) tensor, array or NumPy number.
        self.low_precision = False
        #: Whether the last call ran ``.backward()`` through its arguments (a gradient appeared on them).
        self.backward = False
        #: The watched namespaces and functions, found once per check.
        self.watched: list[tuple[Any, bool]] = []
        self.functions: list[tuple[str, FunctionType]] = []

    def note_restored(self, names: list[str]) -> None:
        for name in names:
            if name not in self.restored:
                self.restored.append(name)


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

    The check runs with the comparison functions bound at import (see :class:`Guard`), even if the
    notebook replaced them; what it replaced is handed back afterwards and named in ``swapped``.
    What the learner's code changed during the check (in a call or in code the checker ran later,
    such as an autograd hook) is put back and named in ``restored`` (global state) and ``patched``
    (functions, classes, modules).
    """
    global _session
    outer = _session
    limit = float(time_limit)
    if not limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    session = Session(name, arg_names, signature, limit, max(float(budget), limit))
    session.shortcuts = dict(shortcuts or {})
    swapped = _use_pristine()
    session.swapped = [f"{_label(owner)}.{key}" for owner, key, _ in swapped]
    state = State(rng=True)
    session.watched, session.functions = watched_and_functions()
    guard = Guard(session.watched, session.functions)
    own, fix_builtins, restore_state, restore_guard = guard.own, guard.fix_builtins, state.restore, guard.restore
    put_back, put_back_code, put_back_defaults = put_own_back, put_own_back.__code__, put_own_back.__defaults__
    _session = session
    try:
        yield session
    finally:
        _session = outer
        put_back.__code__, put_back.__defaults__ = put_back_code, put_back_defaults
        rewritten = put_back(own)  # first: the code that follows is the checker's own
        fix_builtins()
        session.note_restored(restore_state())  # before the guard: putting back the default dtype rebinds torch.Storage
        for found in [*rewritten, *restore_guard()]:
            if found not in session.patched:
                session.patched.append(found)
        _put_back(swapped)


def _own_spaces() -> tuple:
    """(owner, its dict if a module, the names it had, its items, its name) for ``mixlib.exercises``,
    ``mixlib.exercises.runner`` and the classes defined in them."""
    modules = [m for m in (sys.modules.get("mixlib.exercises"), sys.modules.get(__name__)) if m is not None]
    owners: list[Any] = list(modules)
    for module in modules:
        owners += [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    return tuple((owner, vars(owner) if isinstance(owner, ModuleType) else None, frozenset(vars(owner)),
                  tuple(vars(owner).items()), _label(owner)) for owner in owners)


def put_own_back(own: tuple, _missing: Any = _MISSING, _set: Any = type.__setattr__, _delete: Any = type.__delattr__,
                 ) -> list[str]:
    """Put back what a :class:`Guard` holds in ``own``; return the names of what had changed.

    Call it with nothing but what was kept before the learner's code ran (the tuple, this function, its code
    and its defaults): the checker's own functions, globals and classes may be among what was replaced, so
    nothing else of the checker's runs before this, and this uses no global name and no built-in function.
    """
    functions, spaces = own
    names: list[str] = []
    for f, name, code, defaults, kwdefaults in functions:
        if f.__code__ is not code or f.__defaults__ is not defaults or f.__kwdefaults__ is not kwdefaults:
            try:
                f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
            except ValueError:  # a closure of another size: the guard reports it
                continue
            names.append(name + " (its code, defaults or closure)")
    for owner, d, keys, items, label in spaces:
        now = owner.__dict__
        for key, value in items:
            if now.get(key, _missing) is not value:
                if d is not None:
                    d[key] = value
                else:
                    _set(owner, key, value)
                names.append(label + "." + key)
        for key in [*now]:
            if key not in keys and key not in ("__warningregistry__",):
                if d is not None:
                    del d[key]
                else:
                    _delete(owner, key)
                names.append(label + "." + key)
    return names


def alarm_usable() -> bool:
    """Whether a ``SIGALRM`` timer can stop the learner's function here (POSIX, main thread)."""
    return _setitimer is not None and sys.platform != "win32" and _on_main_thread()


class _Watchdog:
    """A thread that raises the time-out in the calling thread ``delay`` seconds from now, and again every
    50 ms, until :meth:`stop` (CPython's ``PyThreadState_SetAsyncExc``). Built from ``_thread``'s locks, which
    a learner's function cannot replace."""

    def __init__(self, delay: float, state: dict) -> None:
        self.deadline = _monotonic() + delay  # from now, not from when the thread first runs: a long operation
        self.thread_id = _get_ident()       # in C that holds the GIL may keep it from starting at all
        self.state = state
        self.lock = _allocate_lock()
        self.gate = _allocate_lock()
        self.gate.acquire()
        self.done = False
        self.fired = False
        _start_new_thread(self._watch, ())

    def _watch(self) -> None:
        left = self.deadline - _monotonic()
        if left > 0 and self.gate.acquire(True, left):
            return
        while True:
            with self.lock:
                if self.done:
                    return
                self.fired = True
                self.state["fired"] = True
                _set_async_exc(self.thread_id, _TimeUp)
            if self.gate.acquire(True, _REPEAT):
                return

    def stop(self) -> None:
        """Stop the thread, then drop a time-out it may have left pending (idempotent)."""
        with self.lock:
            if not self.done:
                self.done = True
                self.gate.release()
            fired = self.fired
        if fired:
            _flush_async_exc(self.thread_id)


def _run_with_alarm(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a ``SIGALRM`` timer and a watchdog beside it; ``state["fired"]`` tells whether the
    time-out went off, ``state["tampered"]`` what the function did to the timer (put back)."""
    state["armed"] = False
    tampered: list[str] = state.setdefault("tampered", [])

    def on_alarm(signum: int, frame: Any) -> None:
        # Ignore an alarm that lands in this function's own prologue or epilogue, or in the profile
        # function of a CallWatcher (which also runs there); the next alarm, 50 ms later, lands elsewhere.
        if state["armed"] and (frame is None or frame.f_code not in _QUIET_CODES):
            state["fired"] = True
            raise _TimeUp

    try:
        previous = _signal(_SIGALRM, on_alarm)
    except ValueError:  # not the main interpreter
        return _run_with_watchdog(fn, args, kwargs, limit, state)
    started = _monotonic()
    state["due"] = started + limit
    old_mask = _sigmask(signal.SIG_UNBLOCK, [_SIGALRM]) if _sigmask is not None else None
    old_delay, old_interval = _setitimer(signal.ITIMER_REAL, limit, _REPEAT)
    dog = _Watchdog(limit + _GRACE, state)
    seen: dict[str, bool] = {}

    def settle() -> None:
        dog.stop()
        if "handler" not in seen:
            seen["handler"] = True
            if _getsignal(_SIGALRM) is not on_alarm:
                tampered.append("the handler of SIGALRM (the checker's timer)")
        if _sigmask is not None and "mask" not in seen:
            seen["mask"] = True
            if _SIGALRM in _sigmask(signal.SIG_BLOCK, []):
                tampered.append("the blocked signals (SIGALRM, the checker's timer)")
        delay, interval = _setitimer(signal.ITIMER_REAL, 0)
        if "timer" not in seen:
            seen["timer"] = True
            if not -1e-3 < interval - _REPEAT < 1e-3:
                tampered.append("the interval timer (signal.setitimer, the checker's timer)")
        _signal(_SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if old_mask is not None:
            _sigmask(signal.SIG_SETMASK, old_mask)

    try:
        state["armed"] = True
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            _note_delay(state)
            return None
    finally:
        state["armed"] = False
        _settle(settle)
        if old_delay > 0:  # somebody else's timer was running: let it go on
            left = old_delay - (_monotonic() - started)
            _settle(lambda: _setitimer(signal.ITIMER_REAL, left if left > 1e-3 else 1e-3, old_interval))


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


#: torch's functions that draw random numbers, the methods of a tensor that do, and NumPy's names for them.
_TORCH_RANDOM = {id(f): f"torch.{name}" for name in (
    "rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "normal", "bernoulli",
    "multinomial", "poisson", "binomial", "_standard_gamma", "_sample_dirichlet") if (f := getattr(torch, name, None))}
_TENSOR_RANDOM = frozenset({"uniform_", "normal_", "bernoulli", "bernoulli_", "exponential_", "geometric_",
                            "log_normal_", "cauchy_", "random_", "multinomial"})
_NUMPY_RANDOM = frozenset({"default_rng", "RandomState", "SeedSequence", "PCG64", "PCG64DXSM", "MT19937", "Philox",
                           "SFC64"})
_LIBRARY_DIRS = tuple(sorted({os.path.realpath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                              if (p := sysconfig.get_paths().get(key))}
                             | {os.path.dirname(os.path.dirname(os.path.realpath(__file__)))}))
_library_file_cache: dict[str, bool] = {}


def _is_library_file(filename: str) -> bool:
    known = _library_file_cache.get(filename)
    if known is None:
        known = filename.startswith("<frozen") or os.path.realpath(filename).startswith(_LIBRARY_DIRS)
        _library_file_cache[filename] = known
    return known


def _random_c_call(fn: Any) -> str | None:
    """What ``fn``, a C function about to be called, is if it draws random numbers; else ``None``."""
    found = _TORCH_RANDOM.get(id(fn))
    if found is not None:
        return found
    owner = getattr(fn, "__self__", None)
    if owner is None:
        return None
    kind = type(owner)
    if issubclass(kind, torch.Tensor) and getattr(fn, "__name__", "") in _TENSOR_RANDOM:
        return f"Tensor.{fn.__name__}"
    if issubclass(kind, random.Random) and getattr(fn, "__name__", "") in ("random", "getrandbits"):
        return "Python's random module"
    return None


class CallWatcher:
    """A context manager that notes whether the code inside it calls one of some given functions.

    ``codes`` maps code objects (see :func:`code_objects`) to what ``hit`` should hold once
    one of them runs: the first seen. With ``randomness=True`` it also notes whether the code drew
    random numbers (:meth:`random_use`): a torch function or tensor method that samples, Python's
    ``random``, or (by the names it uses) NumPy's random generators in the learner's own code. It
    works with ``sys.setprofile``, in the current thread only, and costs nothing when there is
    nothing to watch. A profile function already set (a profiler written in Python) keeps receiving
    every event and is put back on exit; under a profiler written in C, which cannot be chained, the
    watcher stays off.
    """

    def __init__(self, codes: Mapping[CodeType, Any], *, randomness: bool = False) -> None:
        self.codes = codes
        self.randomness = randomness
        self.hit: Any = None
        self.random: str | None = None
        self._called: set[CodeType] = set()
        self._previous: Any = None
        self._active = False

    def __enter__(self) -> CallWatcher:
        if self.codes or self.randomness:
            previous = _getprofile()
            if previous is None or callable(previous):
                self._previous, self._active = previous, True
                _setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self._active = False
            _setprofile(self._previous)

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            if self.hit is None:
                self.hit = self.codes.get(frame.f_code)
            if self.randomness:
                self._called.add(frame.f_code)
        elif event == "c_call" and self.randomness and self.random is None:
            self.random = _random_c_call(arg)
        if self._previous is not None:
            self._previous(frame, event, arg)

    def random_use(self) -> str | None:
        """How the code drew random numbers (``"torch.randn"``, ``"NumPy's default_rng"``), or ``None``."""
        if self.random is not None or not self.randomness:
            return self.random
        for code in self._called:
            if _is_library_file(code.co_filename):
                continue
            names = set(code.co_names)
            numpy_names = names & _NUMPY_RANDOM
            if numpy_names:
                return f"NumPy's {sorted(numpy_names)[0]}"
            if "random" in names and names & {"np", "numpy"}:
                return "NumPy's np.random"
        return None


#: Frames in which an alarm is not raised: the alarm runner's own, and the call watcher's profile function.
_QUIET_CODES = frozenset({_ALARM_CODE, CallWatcher._profile.__code__, _random_c_call.__code__})


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    _SET_ASYNC_EXC(_C_ULONG(thread_id), _PY_OBJECT(exc) if exc else None)


try:
    import ctypes

    _SET_ASYNC_EXC = ctypes.pythonapi.PyThreadState_SetAsyncExc
    _C_ULONG, _PY_OBJECT = ctypes.c_ulong, ctypes.py_object
except (ImportError, AttributeError):
    _SET_ASYNC_EXC = None


def async_exc_usable() -> bool:
    """Whether a watchdog thread can raise the time-out in the learner's thread (CPython only)."""
    return sys.implementation.name == "cpython" and _SET_ASYNC_EXC is not None


def _run_with_watchdog(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` while a watchdog thread raises the time-out in this thread at the deadline (CPython)."""
    state["due"] = _monotonic() + limit
    dog = _Watchdog(limit, state)
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            _note_delay(state)
            return None
    finally:
        _settle(dog.stop)


def _note_delay(state: dict) -> None:
    """Note how many seconds after it was due the time-out took effect."""
    state["delay"] = _monotonic() - state["due"]


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
        i = 0
        while i < 1_000_000:
            i += 1
    except _Flush:
        return


def _run_with_trace(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a trace function that checks the clock at each opcode (the last resort)."""
    deadline = state["due"] = _monotonic() + limit

    def local(frame: Any, event: str, arg: Any) -> Any:
        if _monotonic() > deadline:
            state["fired"] = True
            raise _TimeUp
        return local

    def start(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local(frame, event, arg)

    previous = _gettrace()
    _settrace(start)
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            _note_delay(state)
            return None
    finally:
        _settrace(previous)


def run_limited(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn(*args, **kwargs)`` for at most ``limit`` seconds; ``state["fired"]`` says if it was stopped.

    A stopped function returns ``None``; any other exception it raises goes to the caller.
    ``state["tampered"]`` lists what the function did to the timer (put back); ``state["delay"]``, how
    many seconds after it was due the time-out took effect (more than :data:`LONG_DELAY`: one long
    operation in C held it up).
    """
    state["fired"] = False
    state.setdefault("tampered", [])
    started = _monotonic()
    try:
        if alarm_usable():
            value = _run_with_alarm(fn, args, kwargs, limit, state)
        elif async_exc_usable():
            value = _run_with_watchdog(fn, args, kwargs, limit, state)
        else:
            value = _run_with_trace(fn, args, kwargs, limit, state)
    except _TimeUp:  # raised in a runner's own epilogue, after the function returned
        state["fired"] = True
        state.setdefault("delay", _monotonic() - started - limit)
        return None
    late = _monotonic() - started - limit
    if late > _GRACE:  # returned, but late: one long operation in C held it up, and the alarm landed where it
        state["fired"] = True  # is ignored
        state["delay"] = late
        return None
    return value


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
    if type(b) is not torch.Tensor or a.shape != b.shape:
        return False
    a64, b64 = a.detach().cpu(), b.detach().cpu()
    if a64.is_floating_point() or b64.is_floating_point():
        a64, b64 = a64.double(), b64.double()
    return bool(torch.equal(a64, b64))


def changed(original: Any, given: Any) -> str | None:
    """``None`` if the learner's copy still equals the original, else what changed: ``"tensor"``
    (or array), ``"model"`` (parameters or buffers) or ``"container"`` (length or keys). A copy whose
    type was changed (``x.__class__ = ...``) counts as changed."""
    if isinstance(original, torch.Tensor):
        return None if _same_tensor(original, given) else "tensor"
    if isinstance(original, np.ndarray):
        same = (type(given) is type(original) and given.shape == original.shape
                and bool(np.array_equal(original, np.ndarray.view(given, np.ndarray))))
        return None if same else "tensor"
    if isinstance(original, nn.Module):
        if type(given) is not type(original):
            return "model"
        before, after = nn.Module.state_dict(original), nn.Module.state_dict(given)
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


def grads_appeared(original: Any, given: Any) -> bool:
    """Whether a gradient appeared on the learner's copy (a tensor or a model's parameters) that the original
    did not have: the learner's function ran ``.backward()`` through its arguments."""
    if isinstance(original, torch.Tensor):
        return original.grad is None and type(given) is torch.Tensor and given.grad is not None
    if isinstance(original, nn.Module) and type(given) is type(original):
        return any(p.grad is None and type(q) in (torch.Tensor, nn.Parameter) and q.grad is not None
                   for p, q in zip(nn.Module.parameters(original), nn.Module.parameters(given), strict=False))
    if type(original) in (tuple, list) and type(given) is type(original):
        return any(map(grads_appeared, original, given))
    if type(original) is dict and type(given) is dict:
        return any(grads_appeared(v, given.get(k)) for k, v in original.items())
    return False


def float64_only(values: Any) -> bool:
    """Whether every floating-point value among ``values`` (Python floats, tensors, arrays and NumPy numbers,
    in tuples, lists and dicts) is float64, and there is one at least."""
    kinds: set[str] = set()

    def visit(v: Any, depth: int = 0) -> None:
        if depth > 6:
            return
        if type(v) is float:
            kinds.add("float64")
        elif isinstance(v, torch.Tensor):
            if v.is_floating_point():
                kinds.add(str(v.dtype).removeprefix("torch."))
        elif isinstance(v, (np.ndarray, np.floating)):
            if np.issubdtype(v.dtype, np.floating):
                kinds.add(str(v.dtype))
        elif isinstance(v, nn.Module):
            kinds.update(str(p.dtype).removeprefix("torch.") for p in v.parameters() if p.is_floating_point())
        elif type(v) in (tuple, list):
            for item in v:
                visit(item, depth + 1)
        elif type(v) is dict:
            for item in v.values():
                visit(item, depth + 1)

    visit(values)
    return kinds == {"float64"}


# --- What the learner's function returned, made plain ----------------------------------------------
class ReturnedValueError(Exception):
    """Reading what the learner's function returned ran its code, and that raised ``error``."""

    def __init__(self, type_name: str, error: BaseException) -> None:
        super().__init__(f"{type_name}: {type(error).__name__}: {error}")
        self.type_name = type_name
        self.error = error


class Foreign:
    """Stands in for a returned object of a type the checker does not read: a subclass of it carries the
    object's type name, and nothing of the object's own (no methods that could run the learner's code)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"


_type_name = type.__dict__["__name__"].__get__
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Generator,
                    range, slice, type(Ellipsis)})
_LOW_PRECISION = frozenset({torch.float32, torch.float16, torch.bfloat16})
_MAX_DEPTH = 8
_MAX_ITEMS = 1_000_000


def _stand_in(value: Any) -> Foreign:
    name = _type_name(type(value))
    return type(name if isinstance(name, str) and name.isidentifier() else "object", (Foreign,), {"__slots__": ()})()


def _python_keyed(t: torch.Tensor) -> bool:
    """Whether the tensor's operations run Python code (a ``__torch_dispatch__`` subclass)."""
    if _dispatch_keys is None or _PYTHON_KEY is None:
        return type(t).__torch_dispatch__ is not torch.Tensor.__torch_dispatch__
    return bool(_dispatch_keys(t).has(_PYTHON_KEY))


class _Reader:
    """Makes a returned value plain (see :func:`plain`), and notes whether it held low-precision numbers."""

    def __init__(self) -> None:
        self.items = 0
        self.low_precision = False

    def plain(self, value: Any, depth: int = 0) -> Any:
        kind = type(value)
        self.items += 1
        if kind in _ATOMS:
            return value
        if depth > _MAX_DEPTH or self.items > _MAX_ITEMS:
            return _stand_in(value)
        if kind is torch.Tensor or issubclass(kind, torch.Tensor):
            if _python_keyed(value):
                return _stand_in(value)
            if kind is not torch.Tensor:
                with _disable_torch_function():
                    value = _as_subclass(value, torch.Tensor)
            self.low_precision = self.low_precision or value.dtype in _LOW_PRECISION
            return value
        if kind is np.ndarray or issubclass(kind, np.ndarray):
            if kind is not np.ndarray:
                value = np.ndarray.view(value, np.ndarray).copy()
            self.low_precision = self.low_precision or value.dtype in (np.float32, np.float16)
            if value.dtype == object:
                if value.size > _MAX_ITEMS:
                    return _stand_in(value)
                flat = np.empty(value.size, dtype=object)
                for i, item in enumerate(value.reshape(-1)):
                    flat[i] = self.plain(item, depth + 1)
                return flat.reshape(value.shape)
            return value
        if issubclass(kind, np.generic):
            if kind.__module__ != "numpy":  # a subclass of a NumPy scalar type
                return _stand_in(value)
            self.low_precision = self.low_precision or kind in (np.float32, np.float16)
            return value
        if issubclass(kind, int):
            return int.__int__(value)
        if issubclass(kind, float):
            return float.__float__(value)
        if issubclass(kind, complex):
            return complex(complex.real.__get__(value), complex.imag.__get__(value))
        if issubclass(kind, str):
            return str.__str__(value)
        if issubclass(kind, tuple):
            return tuple(self.plain(v, depth + 1) for v in tuple.__iter__(value))
        if issubclass(kind, list):
            return [self.plain(v, depth + 1) for v in list.__iter__(value)]
        if issubclass(kind, dict):
            return {self.plain(k, depth + 1): self.plain(v, depth + 1) for k, v in dict.items(value)}
        if isinstance(value, numbers.Real):  # fractions.Fraction, a SymPy number, ...: its own __float__
            return float.__float__(float(value))
        return _stand_in(value)


def plain(value: Any) -> tuple[Any, bool]:
    """``value`` with only plain types left, and whether it held float32 (or lower) numbers.

    Exact ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, NumPy numbers and arrays and
    ``torch.Tensor`` are kept (an array of objects has its items made plain); a tensor subclass
    becomes a plain tensor on the same data (its ``__torch_function__`` never runs; one whose
    operations run Python code, a ``__torch_dispatch__`` subclass, becomes a stand-in); subclasses of
    ``int``, ``float``, ``complex``, ``str``, ``tuple``, ``list``, ``dict`` and ``np.ndarray`` become the
    base type, read without their own methods; another real number (``numbers.Real``) becomes a
    ``float`` through its ``__float__``; anything else a :class:`Foreign` stand-in with its type's
    name. Call it inside the time limit: the last two steps can run the learner's code.
    """
    reader = _Reader()
    out = reader.plain(value)
    return out, reader.low_precision


def _code_of(answer: Any) -> CodeType | None:
    """The code of a plain Python function or method, read without running any code of the learner's."""
    if type(answer) is MethodType:
        answer = answer.__func__
    return answer.__code__ if type(answer) is FunctionType else None


_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE"}


def is_stub(answer: Callable[..., Any]) -> bool:
    """Whether ``answer`` is an empty stub: a body of ``...``, ``pass`` or a docstring only."""
    code = _code_of(answer)
    if code is None:
        return False
    try:
        return all(ins.opname in _STUB_OPS for ins in dis.get_instructions(code))
    except Exception:  # an unusual code object: not a stub we recognise
        return False


@dataclass
class Report:
    """What :func:`after_call` found, inside the time limit, once the learner's function had returned."""

    mutation: tuple[int | str, str] | None = None
    backward: bool = False
    low_precision: bool = False


def after_call(value: Any, args: tuple, given: tuple, kwargs: dict, given_kwargs: dict, report: Report) -> Any:
    """Read what the learner's function returned and did to its arguments; run inside the time limit.

    Returns the value made plain (:func:`plain`); ``report`` gets the first argument the function changed
    (its position or keyword, and :func:`changed`'s kind), whether a gradient appeared on an argument and
    whether the value held float32 numbers. An error while reading the value is raised as
    :class:`ReturnedValueError`.
    """
    try:
        out, report.low_precision = plain(value)
    except (KeyboardInterrupt, _TimeUp):
        raise
    except BaseException as exc:
        raise ReturnedValueError(_type_name(type(value)), exc) from None
    pairs = [*enumerate(zip(args, given, strict=True)), *((k, (v, given_kwargs[k])) for k, v in kwargs.items())]
    for where, (original, copied) in pairs:
        try:
            kind = changed(original, copied)
        except (KeyboardInterrupt, _TimeUp):
            raise
        except BaseException:  # the copy no longer behaves like one: it was changed
            kind = "model" if isinstance(original, nn.Module) else "tensor"
        if kind is not None:
            report.mutation = (where, kind)
            break
    try:
        report.backward = any(grads_appeared(original, copied) for _, (original, copied) in pairs)
    except (KeyboardInterrupt, _TimeUp):
        raise
    except BaseException:
        report.backward = False
    return out
