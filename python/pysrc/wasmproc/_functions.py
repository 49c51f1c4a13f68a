"""Python functions as tasks, the host side: a function crosses into the
sandbox as its source text plus data, never as bytecode.

Why source: the sandbox's CPython (componentize-py's) is not the host's
version, and bytecode (what cloudpickle ships for a lambda or a closure) is
specific to one CPython minor version. So ``ship`` sends, for the function
and each function it uses from the same program:

- its source, cut out of its file with ``ast`` (a lambda: the exact
  ``lambda`` expression, found at the code object's line and positions);
- the values of its free variables, defaults and the globals it reads,
  when they are plain data (a str, a 64-bit int, a finite float, a bool or
  None inline in the payload's JSON; others pickled with protocol 4, which
  both versions read; checked here, type by type, before anything is sent);
- the standard-library modules and objects it uses, by import name, which
  the sandbox imports from its own standard library.

Anything else is refused with ``CannotShip`` (a ``TypeError``) naming the
value and what to do instead. The sandbox side is ``_sandbox/app.py``. The
bytecode a pool reuses is the sandbox's own, compiled there from the source
alone (``sources``; see ``_compiled``); this process never makes or reads it.
"""

from __future__ import annotations

import ast
import base64
import datetime
import decimal
import dis
import fractions
import functools
import importlib
import inspect
import json
import math
import pickle
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ._pipe import Connection
from ._queue import Queue
from ._sync import Barrier, Event, Lock, Semaphore, SharedRegion

PAYLOAD_VERSION = 1

# The pickle protocol both the host's (3.9 and newer) and the sandbox's
# CPython read.
PICKLE_PROTOCOL = 4


class CannotShip(TypeError):
    """A function (or a value it uses) cannot be sent into the sandbox; the
    message names it and says what to do instead. Raised before any task
    starts."""


# Exactly these types (not their subclasses, whose classes the sandbox
# would have to import) are plain data.
_SCALARS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    range,
    datetime.date,
    datetime.time,
    datetime.datetime,
    datetime.timedelta,
    decimal.Decimal,
    fractions.Fraction,
)
_CONTAINERS = (list, tuple, set, frozenset, dict)

# wasmproc's own sharing objects: they reach the sandbox only when the
# pool shares them.
_SHARED_TYPES = (Queue, Connection, SharedRegion, Lock, Event, Semaphore, Barrier)

_PLAIN_DATA = (
    "plain data (None, bool, int, float, complex, str, bytes, and lists, tuples, dicts and sets "
    "of them; datetime, Decimal, Fraction)"
)


_STDLIB_NAMES = getattr(sys, "stdlib_module_names", None)
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _is_stdlib(name: str) -> bool:
    """Whether the module ``name`` (dotted or not) is of the standard library."""
    top = name.partition(".")[0]
    if _STDLIB_NAMES is not None:
        return top in _STDLIB_NAMES
    # Python 3.9: built in, or loaded from the standard library's directory.
    if top in sys.builtin_module_names:
        return True
    file = getattr(sys.modules.get(top), "__file__", None)
    if not file or "site-packages" in file or "dist-packages" in file:
        return False
    try:
        Path(file).resolve().relative_to(_STDLIB_DIR)
    except ValueError:
        return False
    return True

# The host's os.path is ntpath on Windows; the sandbox's is posixpath.
_MODULE_ALIASES = {"ntpath": "os.path", "posixpath": "os.path"}


Init = Tuple[Callable[..., Any], Tuple[Any, ...]]
"""An initializer and its arguments, run before the task in its sandbox."""


Granted = Mapping[int, Dict[str, Any]]
"""The pool's shared objects a function may use, by ``id``: how the sandbox
reaches each (``{"queue": name}``, ``{"pipe": True}``)."""


def ship(
    function: Callable[..., Any],
    init: Optional[Init] = None,
    sys_path: Sequence[str] = (),
    granted: Optional[Granted] = None,
) -> str:
    """The payload (JSON text) that the sandbox's runner builds
    ``function`` (and ``init``'s function, with the same namespaces: the
    globals an initializer sets are the task's) from; ``CannotShip`` when
    it cannot cross. ``sys_path``: directories of the sandbox put first on
    its ``sys.path`` (granted pure-Python packages); with them, modules
    outside the standard library, and their classes and C functions, go by
    name too (importing them there is the sandbox's affair). ``granted``:
    the pool's shared queues and pipe end, which a function may capture or
    read as a global; the sandbox gives it the same queue or pipe."""
    return _Shipper(list(sys_path), granted or {}).payload(function, init)


def ship_initializer(
    init: Init, sys_path: Sequence[str] = (), granted: Optional[Granted] = None
) -> Tuple[str, bool]:
    """The payload of the pool's initializer alone, for the runner's
    ``init`` (run once, then snapshot), and whether it uses an object the
    pool shares: such an initializer runs in each task's sandbox instead,
    since a snapshot keeps memory, not a task's handles to shared objects."""
    shipper = _Shipper(list(sys_path), granted or {})
    return shipper.payload(init[0], init), shipper.uses_granted


def call_args(args: Sequence[Any], kwds: Optional[Mapping[str, Any]] = None) -> str:
    """A call's arguments as the runner takes them: JSON text of
    ``[positional, keywords]``; ``TypeError`` for a value that is not
    JSON-compatible, ``ValueError`` for one JSON cannot carry (NaN, an int
    past 64 bits): the same rule as for Wasm tasks."""
    from . import _native

    try:
        return _native.json_text([list(args), dict(kwds or {})], "a task's arguments")
    except TypeError as error:
        raise TypeError(
            f"{error}: values of other types can be captured by the function instead (a "
            "closure or a global), when they are plain data"
        ) from None


def _describe(function: Any) -> str:
    name = getattr(function, "__qualname__", None) or repr(function)
    code = getattr(function, "__code__", None)
    if code is not None:
        return f"{name} ({code.co_filename}, line {code.co_firstlineno})"
    return name


class _Shipper:
    """Collects what one payload needs: each function once, each value
    once, one namespace per host module."""

    def __init__(self, sys_path: List[str], granted: Granted) -> None:
        self.sys_path = sys_path
        self.granted = granted
        self.data: List[Any] = []
        self.data_index: Dict[int, int] = {}
        self.functions: List[Optional[Dict[str, Any]]] = []
        self.function_index: Dict[int, int] = {}
        self.namespaces: List[Dict[str, Any]] = []
        self.namespace_index: Dict[int, int] = {}
        # The host module's name of each namespace.
        self.modules: List[str] = []
        # Whether a value is one of the pool's shared objects.
        self.uses_granted = False

    def payload(self, function: Callable[..., Any], init: Optional[Init]) -> str:
        entry = self.entry(function)
        initializer = None
        if init is not None:
            initializer = {
                "func": self.entry(init[0]),
                "args": [self.ref(arg, "an argument of the initializer") for arg in init[1]],
            }
        data = None
        if self.data:
            try:
                pickled = pickle.dumps(self.data, protocol=PICKLE_PROTOCOL)
            except Exception as error:  # noqa: BLE001 - reported as what it is
                raise CannotShip(f"the function's data cannot be pickled: {error}") from error
            data = base64.b64encode(pickled).decode("ascii")
        return json.dumps(
            {
                "v": PAYLOAD_VERSION,
                "data": data,
                "namespaces": self.namespaces,
                "modules": self.modules,
                "functions": self.functions,
                "entry": entry,
                "init": initializer,
                "sys_path": self.sys_path,
            }
        )

    def entry(self, function: Any) -> Dict[str, Any]:
        if isinstance(function, (types.FunctionType, functools.partial)):
            return self.ref(function, "the task")
        if isinstance(function, types.MethodType):
            raise CannotShip(
                f"{_describe(function)} is a bound method: its object (self) cannot cross into "
                "the sandbox. Use a function, and pass the object's data as plain values"
            )
        by_name = self.by_name(function, granted=bool(self.sys_path))
        if by_name is not None:
            return by_name
        if isinstance(function, type) or not callable(function):
            raise CannotShip(
                f"{function!r} is not a function: a task is a function written in Python "
                "(def or lambda), a functools.partial of one, or a function of the standard library"
            )
        wrapped = getattr(function, "__wrapped__", None)
        hint = (
            f"; it wraps {wrapped.__qualname__}: send that one (its .__wrapped__)"
            if isinstance(wrapped, types.FunctionType)
            else ""
        )
        raise CannotShip(
            f"{function!r} ({type(function).__name__}) cannot cross into the sandbox: it is not a "
            "function written in Python, and not an object of the standard library that the "
            f"sandbox could import by name. Wrap the call in a def or lambda{hint}"
        )

    def ref(self, value: Any, what: str) -> Dict[str, Any]:
        """How the sandbox gets ``value`` (used as ``what``)."""
        granted = self.granted.get(id(value))
        if granted is not None:
            self.uses_granted = True
            return granted
        if isinstance(value, _SHARED_TYPES):
            raise CannotShip(
                f"{what} is a wasmproc.{type(value).__name__} that this pool does not share: "
                "give it to the pool (Pool(share={'name': obj}), or Pool(pipe=end) for a pipe's "
                "end), and the sandbox gets the same one"
            )
        if isinstance(value, types.ModuleType):
            return self.module(value, what)
        if isinstance(value, functools.partial):
            return {
                "partial": {
                    "func": self.ref(value.func, f"{what}'s function"),
                    "args": [self.ref(arg, f"{what}'s argument") for arg in value.args],
                    "keywords": {
                        name: self.ref(arg, f"{what}'s argument {name!r}")
                        for name, arg in value.keywords.items()
                    },
                }
            }
        if isinstance(value, types.FunctionType):
            by_name = self.by_name(value)
            if by_name is not None:
                return by_name
            return {"function": self.function(value)}
        if _inline(value):
            return {"value": value}
        if self.plain(value, what, set()):
            index = self.data_index.get(id(value))
            if index is None:
                index = self.data_index[id(value)] = len(self.data)
                self.data.append(value)
            return {"data": index}
        by_name = self.by_name(value, granted=bool(self.sys_path))
        if by_name is not None:
            return by_name
        if isinstance(value, types.MethodType):
            kind = "a bound method (its object cannot cross)"
        elif isinstance(value, type):
            kind = f"a class defined in {value.__module__}"
        else:
            kind = f"a {type(value).__module__}.{type(value).__qualname__}"
        owner = getattr(value, "__module__", None)
        grant = (
            f" (a class or function of a pure-Python package, such as {owner}, goes by name when "
            "you grant the package: Pool(sys_path=['/site'], dirs={site_packages: '/site'}))"
            if isinstance(owner, str) and owner != "__main__" and not _is_stdlib(owner)
            and not self.sys_path and not isinstance(value, types.MethodType)
            else ""
        )
        raise CannotShip(
            f"{what} is {kind}, which cannot cross into the sandbox: only {_PLAIN_DATA}, "
            "modules of the standard library and their objects, and functions written in Python "
            "can. Pass what it holds as plain values (an argument, or a captured variable), or "
            f"build it inside the function{grant}"
        )

    def module(self, module: types.ModuleType, what: str) -> Dict[str, Any]:
        name = _MODULE_ALIASES.get(module.__name__, module.__name__)
        if not _is_stdlib(name) and not self.sys_path:
            raise CannotShip(
                f"{what} is the module {module.__name__!r}, which is not in the standard library: "
                "the sandbox's CPython has the standard library and the pure-Python packages you "
                "grant it (Pool(sys_path=['/site'], dirs={site_packages: '/site'})). Otherwise "
                "use the module's work outside the task, or send its results as plain data"
            )
        return {"module": name}

    def by_name(self, value: Any, granted: bool = False) -> Optional[Dict[str, Any]]:
        """A standard-library object (a function, class, constant of a
        module) that the sandbox can import by name, or with ``granted``,
        one of any module but ``__main__``; ``None`` otherwise."""
        module = getattr(value, "__module__", None)
        if module is None:
            owner = getattr(value, "__objclass__", None)  # str.upper
            module = getattr(owner, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
            return None
        module = _MODULE_ALIASES.get(module, module)
        if module == "__main__" or not (granted or _is_stdlib(module)):
            return None
        # Only when the name finds this very object on the host too.
        try:
            found: Any = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            return None
        if found is not value:
            return None
        return {"attr": [module, *qualname.split(".")]}

    def plain(self, value: Any, what: str, seen: set) -> bool:  # type: ignore[type-arg]
        kind = type(value)
        if kind in _SCALARS:
            return True
        if kind not in _CONTAINERS:
            return False
        if id(value) in seen:
            return True
        seen.add(id(value))
        items = (
            [item for pair in value.items() for item in pair] if kind is dict else list(value)
        )
        for item in items:
            if not self.plain(item, what, seen):
                raise CannotShip(
                    f"{what} holds a {type(item).__module__}.{type(item).__qualname__} "
                    f"({item!r:.60}), which cannot cross into the sandbox: only {_PLAIN_DATA} can. "
                    "Convert it to plain values first"
                )
        return True

    def namespace(self, globals_: Dict[str, Any]) -> int:
        index = self.namespace_index.get(id(globals_))
        if index is None:
            index = self.namespace_index[id(globals_)] = len(self.namespaces)
            self.namespaces.append({})
            self.modules.append(str(globals_.get("__name__", "")))
        return index

    def function(self, function: types.FunctionType) -> int:
        known = self.function_index.get(id(function))
        if known is not None:
            return known
        index = self.function_index[id(function)] = len(self.functions)
        self.functions.append(None)
        code = function.__code__
        name = function.__qualname__
        if code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            raise CannotShip(f"{_describe(function)} is an async function: a task is a plain function")
        spec = _source(function)
        namespace = self.namespace(function.__globals__)
        refs = self.namespaces[namespace]
        for global_name in _global_names(code):
            if global_name in refs or global_name not in function.__globals__:
                continue  # known already, or a builtin (or undefined: a NameError there too)
            value = function.__globals__[global_name]
            refs[global_name] = (
                {"function": index}
                if value is function
                else self.ref(value, f"the global {global_name!r} that {name} uses")
            )
        freevars: Dict[str, Any] = {}
        for free_name, cell in zip(code.co_freevars, function.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                raise CannotShip(
                    f"{name} captures {free_name!r}, which has no value yet when the function is "
                    "sent: assign it before sending the function"
                ) from None
            freevars[free_name] = (
                {"self": True}
                if value is function
                else self.ref(value, f"the variable {free_name!r} that {name} captures")
            )
        spec["namespace"] = namespace
        spec["freevars"] = freevars
        spec["defaults"] = (
            None
            if function.__defaults__ is None
            else [self.ref(value, f"a default of {name}") for value in function.__defaults__]
        )
        spec["kwdefaults"] = (
            None
            if function.__kwdefaults__ is None
            else {
                key: self.ref(value, f"the default of {key!r} of {name}")
                for key, value in function.__kwdefaults__.items()
            }
        )
        self.functions[index] = spec
        return index


def _inline(value: Any) -> bool:
    """Whether ``value`` crosses exactly as JSON, in the payload itself:
    the sandbox then needs no unpickling (its first use costs a small call
    a tenth of its time). Ints within 64 bits (JSON text of longer ones
    can hit Python's digit limit), finite floats."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-(1 << 63) <= value < (1 << 64))
    return kind is float and math.isfinite(value)


def sources(payload: str) -> str:
    """What the sandbox compiles a payload's functions from
    (``compile-functions``): each function's source fields and the names of
    its free variables, in the payload's order (JSON text). No value of the
    function's, no argument of a task: the code compiled from it depends on
    the source alone."""
    return json.dumps(
        [
            {
                **{key: spec[key] for key in _SOURCE_FIELDS},
                "freevars": list(spec["freevars"]),
            }
            for spec in json.loads(payload)["functions"]
        ]
    )


_SOURCE_FIELDS = ("kind", "name", "filename", "line", "column", "end_column", "lines")


def with_code(payload: str, code: str) -> str:
    """``payload`` with the code that ``compile-functions`` returned for its
    functions (from ``sources(payload)``)."""
    parsed = json.loads(payload)
    parsed["code"] = code
    return json.dumps(parsed)


def _global_names(code: types.CodeType) -> Iterator[str]:
    """The global names ``code`` (and the code nested in it: comprehensions,
    inner functions, lambdas) reads or writes, from its bytecode: exact,
    unlike ``co_names``, which also holds attribute names."""
    for instruction in dis.get_instructions(code):
        if "GLOBAL" in instruction.opname or instruction.opname == "LOAD_NAME":
            yield str(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


@functools.lru_cache(maxsize=64)
def _parse(filename: str, text: str) -> ast.Module:
    return ast.parse(text, filename)


def _source(function: types.FunctionType) -> Dict[str, Any]:
    """The function's source: the lines of its ``def`` or ``lambda``, where
    they start and end, from its file as ``inspect`` finds it."""
    code = function.__code__
    where = _describe(function)
    try:
        lines, _ = inspect.findsource(code)
    except (OSError, TypeError) as error:
        raise CannotShip(
            f"the source of {where} cannot be found ({error}): a function crosses into the sandbox "
            "as its source text, so define it in a .py file or a notebook cell (not typed into the "
            "interactive interpreter, nor made by exec)"
        ) from None
    try:
        tree = _parse(code.co_filename, "".join(lines))
    except SyntaxError as error:
        raise CannotShip(f"the source file of {where} does not parse here: {error}") from None
    node = _find(tree, code, where)
    arg_names = [arg.arg for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]]
    expected = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    if arg_names != expected:
        raise CannotShip(
            f"the source of {where} does not match the running function (its file changed since "
            "it was loaded?): reload it, or restart the program"
        )
    assert node.end_lineno is not None and node.end_col_offset is not None
    return {
        "kind": "lambda" if isinstance(node, ast.Lambda) else "def",
        "name": code.co_name,
        "filename": code.co_filename,
        "line": node.lineno,
        "column": node.col_offset,
        "end_column": node.end_col_offset,
        "lines": [line.rstrip("\r\n") for line in lines[node.lineno - 1 : node.end_lineno]],
    }


def _find(tree: ast.Module, code: types.CodeType, where: str) -> Any:
    """The ``def`` or ``lambda`` node of ``code`` in its file's tree."""
    if code.co_name == "<lambda>":
        candidates = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
        ]
        if len(candidates) > 1:
            candidates = _narrow_lambdas(candidates, code)
        if not candidates:
            raise CannotShip(f"the lambda {where} is not found in its source file (did it change?)")
        texts = {ast.dump(node) for node in candidates}
        if len(texts) > 1:
            raise CannotShip(
                f"several lambdas on line {code.co_firstlineno} of {code.co_filename} cannot be "
                "told apart: put the one you send on a line of its own, or make it a def"
            )
        return candidates[0]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name:
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            if first == code.co_firstlineno:
                return node
    raise CannotShip(
        f"{where}: a function crosses into the sandbox as its source, and no `def {code.co_name}` "
        f"stands at line {code.co_firstlineno} of {code.co_filename} (did the file change?)"
    )


def _narrow_lambdas(candidates: List[ast.Lambda], code: types.CodeType) -> List[ast.Lambda]:
    """Of several lambdas on one line, those whose parameters are the code's
    and (3.11+) whose body spans every position the code's instructions
    have."""
    count = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:count])
    candidates = [
        node
        for node in candidates
        if [a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]] == names
    ]
    positions: Optional[Callable[[], Iterator[Tuple[Any, ...]]]] = getattr(code, "co_positions", None)
    if positions is None or len(candidates) < 2:
        return candidates
    # Positions of width zero are the code's own bookkeeping (RESUME).
    spans = [
        (line, column, end_line, end_column)
        for line, end_line, column, end_column in positions()
        if None not in (line, end_line, column, end_column) and (line, column) != (end_line, end_column)
    ]
    if not spans:
        return candidates
    hull = (min(span[:2] for span in spans), max(span[2:] for span in spans))

    def body(node: ast.Lambda) -> Tuple[Tuple[int, int], Tuple[Any, Any]]:
        return (node.body.lineno, node.body.col_offset), (node.body.end_lineno, node.body.end_col_offset)

    # The lambda whose body is exactly what its instructions cover (of
    # `lambda x: lambda y: x + y`, the outer's body is the inner lambda).
    exact = [node for node in candidates if body(node) == hull]
    return exact or candidates
