"""The loader examples/services.toml names as ``prices:load_prices``."""


def load_prices() -> dict[str, float]:
    return {"apple": 1.2, "pear": 0.8}
