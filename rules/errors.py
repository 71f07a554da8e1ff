"""The product's exceptions.

Exceptions::

    TariffstreamError: the root of everything the product raises on purpose
     └── ConfigError (also a ValueError): the configuration breaks a rule; the
         message names the field, the value and what was expected.

Bad input events are not exceptions: decoding returns a ``Rejection`` value that
goes to the dead-letter topic (see ``models.decode``).
"""


class TariffstreamError(Exception):
    """Root of the exceptions tariffstream raises on purpose."""


class ConfigError(TariffstreamError, ValueError):
    """The configuration is missing a value, malformed, or breaks a rule."""
