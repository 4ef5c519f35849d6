"""The `config.json` of a `.keras` archive: every object a Keras or
dlrecipes class, every function a Keras built-in, no file paths; and the
input shapes a config declares."""

import sys

import keras

from dlrecipes.saving.rules import (
    BUILTIN_FUNCTION_MODULES, CONFIG_NAME, DATA_CLASSES, FORBIDDEN_CLASSES,
    FUNCTION_MODULES, MAX_JSON_DEPTH, NOT_MODEL_FUNCTIONS, PATH_KEYS,
    PATHLIKE, UnsafeModelError, show)




def check_config(config):
    """Refuse a model config (`config.json`, parsed) that is not safe.

    Walks the whole JSON before any Keras deserialization; see the module
    docstring for the rules. Raises `UnsafeModelError`.
    """
    register_dlrecipes_objects()
    stack = [(config, None, 0, False)]
    while stack:
        value, key, depth, is_data = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise UnsafeModelError(f"{CONFIG_NAME} is nested more than "
                                   f"{MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            _check_string(value, key, is_data)
        elif isinstance(value, list):
            stack.extend((item, None, depth + 1, is_data) for item in value)
        elif isinstance(value, dict):
            if {"class_name", "module", "registered_name"} & value.keys():
                _check_object(value)
            data = is_data or value.get("class_name") in DATA_CLASSES
            for k, v in value.items():
                if k in PATH_KEYS:
                    _check_path_value(k, v)
                stack.append((v, k, depth + 1, data))


def register_dlrecipes_objects():
    """Import the modules that register the dlrecipes classes a model can
    hold (layers, learning-rate schedules, distillation losses and metrics)
    with Keras (`import dlrecipes` does not), so that their
    `dlrecipes>Name` entries are known to the checks and to Keras. Our own modules, imported whatever the file."""
    from dlrecipes import (distillation, gradient_noise, layers,  # noqa: F401
                           schedules)
    from dlrecipes.models import auxiliary, gan, translator  # noqa: F401


def declared_input_shapes(config):
    """The input shapes that a model's config (`check_model_file`'s
    return value) declares, without building the model.

    Returns:
        A list of shape tuples (batch axis first, `None` for unknown
        sizes), one per input, or `None` where the config does not say
        (a subclassed model, an unbuilt Sequential model, an unknown
        layout): then only the built model can tell.
    """
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"),
                                                     list):
        return None
    layers = inner["layers"]
    if config.get("class_name") == "Sequential":
        first = layers[0] if layers and isinstance(layers[0], dict) else {}
        shape = _shape_tuple(
            _batch_shape(first) if first.get("class_name") == "InputLayer"
            else inner.get("build_input_shape"))
        return None if shape is None else [shape]
    if config.get("class_name") != "Functional":
        return None
    names = _input_names(inner.get("input_layers"))
    shapes = {layer.get("name"): _shape_tuple(_batch_shape(layer))
              for layer in layers if isinstance(layer, dict)
              and layer.get("class_name") == "InputLayer"}
    found = [shapes.get(name) for name in names or ()]
    return found if names and None not in found else None


def _input_names(value):
    """Layer names of a Functional config's `input_layers`: one
    `[name, node, tensor]` triple, or a list or dict of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return None
    if len(value) == 3 and isinstance(value[0], str):
        return [value[0]]
    if all(isinstance(v, list) and v and isinstance(v[0], str)
           for v in value):
        return [v[0] for v in value]
    return None


def _batch_shape(layer):
    inner = layer.get("config")
    if not isinstance(inner, dict):
        return None
    return inner.get("batch_shape", inner.get("batch_input_shape"))


def _shape_tuple(shape):
    if not isinstance(shape, (list, tuple)) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool))
            for d in shape):
        return None
    return tuple(shape)


def _check_object(obj):
    class_name = obj.get("class_name")
    module = obj.get("module")
    registered = obj.get("registered_name")
    if not isinstance(class_name, str):
        raise UnsafeModelError(f"object with module {show(module)} has no "
                               f"class_name")
    if class_name in FORBIDDEN_CLASSES:
        raise UnsafeModelError(f"the model contains "
                               f"{FORBIDDEN_CLASSES[class_name]}")
    if class_name in DATA_CLASSES:
        return
    if class_name.startswith("__"):
        raise UnsafeModelError(f"unknown special object {show(class_name)}")
    if not (module is None or isinstance(module, str)) or not (
            registered is None or isinstance(registered, str)):
        raise UnsafeModelError(f"malformed object {show(class_name)}")
    if class_name == "function":
        _check_function(obj.get("config"), module, registered)
        return
    if registered is not None and ">" in registered:
        _check_registered(registered)
        if module is not None and not _is_dlrecipes_module(module):
            raise UnsafeModelError(f"{show(registered)} names module "
                                   f"{show(module)}")
        return
    if registered is not None and registered != class_name:
        raise UnsafeModelError(f"registered_name {show(registered)} does "
                               f"not match class {show(class_name)}")
    owner = _keras_module(module)
    if owner is None:
        raise UnsafeModelError(
            f"class {show(class_name)} from module {show(module)} (only "
            f"Keras and dlrecipes classes load)")
    if not isinstance(getattr(owner, class_name, None), type):
        raise UnsafeModelError(f"{module}.{class_name} is not a Keras class")


def _check_function(name, module, registered):
    if not isinstance(name, str):
        raise UnsafeModelError("a function object without a name")
    if ">" in name or (registered is not None and ">" in registered):
        # A registered function: Keras looks the name up in the registry.
        _check_registered(name)
        if registered not in (None, name):
            _check_registered(registered)
        if module not in (None, "builtins") and not _is_dlrecipes_module(
                module):
            raise UnsafeModelError(f"function {show(name)} names module "
                                   f"{show(module)}")
        return
    if registered not in (None, name, "function"):
        raise UnsafeModelError(f"function {show(name)} has registered_name "
                               f"{show(registered)}")
    if name in NOT_MODEL_FUNCTIONS:
        found = False
    elif module == "builtins":
        found = any(callable(getattr(getattr(keras, m), name, None))
                    for m in BUILTIN_FUNCTION_MODULES)
    else:
        owner = sys.modules.get(module) if module in FUNCTION_MODULES \
            else None
        found = owner is not None and callable(getattr(owner, name, None))
    if not found:
        raise UnsafeModelError(
            f"function {show(name)} from module {show(module)} is not a "
            f"Keras built-in (activations, losses, metrics, ops ...)")


def _check_registered(name):
    """`dlrecipes>Name`, registered by a class defined in dlrecipes."""
    package = name.partition(">")[0]
    if package != "dlrecipes":
        raise UnsafeModelError(f"registered object {show(name)} is not from "
                               f"dlrecipes (only Keras and dlrecipes classes "
                               f"load)")
    obj = keras.saving.get_registered_object(name)
    if obj is None:
        raise UnsafeModelError(f"unknown dlrecipes object {show(name)} (saved"
                               f" by a newer dlrecipes?)")
    if not _is_dlrecipes_module(getattr(obj, "__module__", None)):
        raise UnsafeModelError(f"{show(name)} is registered by module "
                               f"{show(getattr(obj, '__module__', None))}, "
                               f"not by dlrecipes")


def _check_string(value, key, is_data):
    if ">" in value and value in keras.saving.get_custom_objects():
        # Keras resolves registered names given as plain strings.
        _check_registered(value)
    if key is not None and not is_data and PATHLIKE.search(value):
        raise UnsafeModelError(f"config entry {key!r} holds a file path or "
                               f"URL {show(value)}")


def _check_path_value(key, value):
    """A vocabulary (or the like) must be inline, never a file name."""
    if isinstance(value, dict) and value.get("class_name") in (
            "__numpy__", "__tensor__"):
        inner = value.get("config")
        value = inner.get("value") if isinstance(inner, dict) else inner
    if value is None or isinstance(value, list):
        return
    raise UnsafeModelError(f"config entry {key!r} holds {show(value)}, not "
                           f"an inline list (Keras would read it as a file "
                           f"path)")


def _keras_module(name):
    """An already imported `keras` module (so nothing gets imported)."""
    if not isinstance(name, str) or not (name == "keras"
                                         or name.startswith("keras.")):
        return None
    return sys.modules.get(name)


def _is_dlrecipes_module(name):
    return isinstance(name, str) and (name == "dlrecipes"
                                      or name.startswith("dlrecipes."))

