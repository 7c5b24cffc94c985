"""Read the plain subset of the skops format without importing ``skops.io``.

Why
---
Importing ``skops.io`` builds skops' default allow-list by calling
``sklearn.utils.all_estimators()``, which imports every scikit-learn module
(and pytest / dask when installed): about 0.6 s, a third of the cold start of
``featclf predict``. Most featclf model payloads only hold plain nodes, which
this module reads with the modules the model itself needs.

What
----
A skops payload of protocol :data:`SKOPS_PROTOCOL` whose nodes are all of
these kinds (skops' node names):

``JsonNode``
    a JSON primitive;
``ListNode``, ``TupleNode``, ``DictNode``
    exactly ``list``, ``tuple`` and ``dict`` (dict keys rebuilt with
    ``str``, ``int``, ``float`` or ``bool``, given by ``TypeNode``);
``TypeNode``
    one of those four key types;
``NdArrayNode``
    an ``.npy`` member read with ``allow_pickle=False``: an array or a numpy
    scalar of a fixed list of numeric types;
``ObjectNode``
    an instance rebuilt with ``cls.__new__(cls)`` then ``__setstate__`` (or
    ``__dict__.update``) from a dict, only when ``accept_object`` accepts
    the type's fully qualified name.

That is everything featclf pipelines hold except forests (``TreeNode``) and
the histogram-intersection SVM (``FunctionNode``). Each construction mirrors
skops' own (``skops.io._general`` / ``_numpy``, protocol 2), so the result is
the object ``skops.io.loads`` would build.

Safety
------
The whole schema is parsed, then every type is audited, before any module
is imported for the model or any object constructed; arrays are never
unpickled. Anything else -- another node kind or protocol, a type that
``accept_object`` refuses, a malformed schema, an error while building --
returns :data:`NOT_HANDLED`, and the caller hands the payload to
``skops.io``, which decides (and names refused types). This reader therefore
accepts a subset of what the skops path accepts and only changes how fast
it is done.
"""

import importlib
import io
import json
import zipfile

import numpy as np

__all__ = ["read_skops_subset", "NOT_HANDLED", "SKOPS_PROTOCOL"]

#: The skops protocol whose node layouts this reader mirrors.
SKOPS_PROTOCOL = 2


class _NotHandled:
    def __repr__(self):
        return "NOT_HANDLED"


#: What :func:`read_skops_subset` returns for a payload it leaves to skops.
NOT_HANDLED = _NotHandled()

#: dict key types (``TypeNode``) and what rebuilds them
_KEY_TYPES = {"builtins.str": str, "builtins.int": int,
              "builtins.float": float, "builtins.bool": bool}
#: numpy scalar types an ``NdArrayNode`` may hold (all in skops' defaults)
_NUMPY_SCALARS = frozenset(
    f"numpy.{name}" for name in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
        "uint64", "float16", "float32", "float64", "complex64", "complex128")
)


class _Unsupported(Exception):
    """The payload is outside the subset (or malformed): skops decides."""


class _Node:
    """One parsed node: its kind, type name and unbuilt children."""

    __slots__ = ("kind", "type_name", "children", "data", "state")

    def __init__(self, kind, type_name):
        self.kind, self.type_name = kind, type_name
        self.children, self.data = None, None
        self.state = "parsed"  # -> "building" -> "built"


def read_skops_subset(payload, accept_object):
    """Rebuild an object from skops bytes if it only holds plain nodes.

    Parameters
    ----------
    payload : bytes
        A skops file (what ``skops.io.dumps`` returns).
    accept_object : callable
        ``accept_object(type_name) -> bool`` for the fully qualified name of
        every ``ObjectNode`` type (``"sklearn.svm._classes.LinearSVC"``); it
        may import the type's module to decide. It must accept only types
        the skops path would accept.

    Returns
    -------
    obj : object or NOT_HANDLED
        The rebuilt object, or :data:`NOT_HANDLED` when the payload is
        outside the subset, refused or malformed (nothing of it was built
        then, or what was is dropped).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            schema = json.loads(archive.read("schema.json"))
            if not isinstance(schema, dict):
                return NOT_HANDLED
            protocol = schema.get("protocol")
            if type(protocol) is not int or protocol != SKOPS_PROTOCOL:
                return NOT_HANDLED
            memo, nodes = {}, []
            root = _parse(schema, archive, memo, nodes)
        for node in nodes:  # audit everything before building anything
            if node.kind == "object" and not accept_object(node.type_name):
                return NOT_HANDLED
        return _build(root)
    except Exception:  # noqa: BLE001 - anything unusual goes to skops
        return NOT_HANDLED


def _parse(state, archive, memo, nodes):
    """Parse one schema node (and its children), as skops' ``get_tree`` does.

    An ``__id__`` seen before returns the node parsed for it (shared
    objects); ``__id__`` values are remembered before the children are
    parsed, like skops does.
    """
    saved_id = state.get("__id__")
    if saved_id in memo:
        return memo[saved_id]
    loader = state["__loader__"]
    type_name = f"{state['__module__']}.{state['__class__']}"
    if not (isinstance(state["__module__"], str) and isinstance(state["__class__"], str)):
        raise _Unsupported("type names must be strings")
    if loader == "JsonNode":
        node = _Node("json", type_name)
    elif loader == "ListNode" and type_name == "builtins.list":
        node = _Node("list", type_name)
    elif loader == "TupleNode" and type_name == "builtins.tuple":
        node = _Node("tuple", type_name)
    elif loader == "DictNode" and type_name == "builtins.dict":
        node = _Node("dict", type_name)
    elif loader == "TypeNode" and type_name in _KEY_TYPES:
        node = _Node("type", type_name)
    elif (loader == "NdArrayNode" and state.get("type") == "numpy"
          and (type_name == "numpy.ndarray" or type_name in _NUMPY_SCALARS)):
        node = _Node("array", type_name)
    elif loader == "ObjectNode":
        node = _Node("object", type_name)
    else:
        raise _Unsupported(f"{loader} for {type_name}")
    if saved_id:
        memo[saved_id] = node
    nodes.append(node)

    if node.kind == "json":
        node.data = state["content"]
    elif node.kind in ("list", "tuple"):
        node.children = [_parse(value, archive, memo, nodes) for value in state["content"]]
    elif node.kind == "dict":
        content = state["content"]
        if not isinstance(content, dict):
            raise _Unsupported("dict content must be a JSON object")
        node.data = _parse(state["key_types"], archive, memo, nodes)
        node.children = {key: _parse(value, archive, memo, nodes)
                         for key, value in content.items()}
    elif node.kind == "array":
        node.data = archive.read(state["file"])
    elif node.kind == "object":
        content = state.get("content")
        node.children = None if content is None else _parse(content, archive, memo, nodes)
    return node


def _build(node):
    """Construct a parsed node once (shared nodes give one shared object)."""
    if node.state == "built":
        return node.data
    if node.state == "building":
        raise _Unsupported("the schema refers to itself")
    node.state = "building"
    kind = node.kind
    if kind == "json":
        value = json.loads(node.data)
    elif kind == "list":
        value = [_build(child) for child in node.children]
    elif kind == "tuple":
        value = tuple(_build(child) for child in node.children)
    elif kind == "type":
        value = _KEY_TYPES[node.type_name]
    elif kind == "dict":
        key_types = _build(node.data)
        value = {}
        for key_type, (key, child) in zip(key_types, node.children.items()):
            if not any(key_type is allowed for allowed in _KEY_TYPES.values()):
                raise _Unsupported("dict key types must be TypeNodes")
            value[key_type(key)] = _build(child)
    elif kind == "array":
        value = np.load(io.BytesIO(node.data), allow_pickle=False)
        if node.type_name != "numpy.ndarray":
            value = getattr(np, node.type_name.rpartition(".")[2])(value)
    else:  # object
        module_name, _, class_name = node.type_name.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        value = cls.__new__(cls)
        attrs = None if node.children is None else _build(node.children)
        if attrs is not None:
            if hasattr(value, "__setstate__"):
                value.__setstate__(attrs)
            else:
                value.__dict__.update(attrs)
    # the node keeps what it built (its children are no longer needed)
    node.state, node.data, node.children = "built", value, None
    return value
