"""Build a config recipe's llmcompressor modifiers, and name what llmcompressor refuses.

A recipe is a list of {ClassName: {arguments}} (quantstudy.core.schemes). Its modifiers are
built as instances and handed to `oneshot` as a list: llmcompressor's own YAML reader
(Recipe.from_dict) silently drops keys it does not expect, instances do not. Every modifier is
a pydantic model that refuses unknown arguments and checks types, presets and scheme
conflicts, so building them with no model validates the whole recipe: the quantize job does
that first, before it loads any weights, and maps each error to its config key.
"""

from __future__ import annotations

from quantstudy.core.schemes import modifiers


class RecipeError(ValueError):
    """A recipe llmcompressor refuses; the message names the config key."""


def _modifier_class(name: str):
    from llmcompressor.modifiers.factory import ModifierFactory

    if not ModifierFactory._loaded:
        ModifierFactory.refresh()
    cls = ModifierFactory._main_registry.get(name) or ModifierFactory._experimental_registry.get(name)
    if cls is None:
        raise RecipeError(f"llmcompressor has no modifier '{name}'")
    return cls


def build(recipe: dict, key: str = "recipe") -> list:
    """The recipe's modifier instances, in order; RecipeError names the config key at fault."""
    import pydantic

    built, errors = [], []
    for i, (name, args) in enumerate(modifiers(recipe)):
        where = f"{key}.modifiers[{i}].{name}"
        try:
            built.append(_modifier_class(name)(**args))
        except RecipeError as e:
            errors.append(f"config key '{key}.modifiers[{i}]': {e}")
        except pydantic.ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                what = "unknown argument" if err["type"] == "extra_forbidden" else err["msg"]
                errors.append(f"config key '{where}{'.' + loc if loc else ''}': {what}")
        except (TypeError, ValueError) as e:
            errors.append(f"config key '{where}': {e}")
    if not errors:
        # Recipe-level rules, e.g. AWQ must be followed by a quantizing modifier.
        from llmcompressor.recipe import Recipe

        try:
            Recipe.from_modifiers(built)
        except (pydantic.ValidationError, ValueError) as e:
            errors.append(f"config key '{key}.modifiers': {e}")
    if errors:
        raise RecipeError("\n".join(errors))
    return built


def requires_calibration(built: list) -> bool:
    """llmcompressor's own rule for running the calibrated pipeline."""
    return any(getattr(m, "requires_calibration_data", False) for m in built)
