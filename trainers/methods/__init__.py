"""Method registry. Adding a method is one new file here plus its import below; nothing else names it."""

from __future__ import annotations

from evaluators.registry import Registry
from trainers.methods.base import AutoencoderMethod, MethodOutput

METHODS: Registry[type[AutoencoderMethod]] = Registry("method")


def register(name: str):
    def decorator(cls: type[AutoencoderMethod]) -> type[AutoencoderMethod]:
        cls.name = name
        return METHODS.register(name)(cls)

    return decorator


def get(name: str) -> type[AutoencoderMethod]:
    return METHODS.get(name)


__all__ = ["METHODS", "AutoencoderMethod", "MethodOutput", "get", "register"]

from trainers.methods import ae, eae, entropic, gmpdm, rae_gp, rae_l2, rae_sn, sae, vae, wae_mmd  # noqa: E402,F401  (registration)
