"""Built-in features, each a plugin registered through the same hooks as any other.

The host loads them by name (``acctdomain.plugins.host.DEFAULT_PLUGINS``); no core module
imports them, so a built-in can be blocked or replaced like a third-party plugin.
"""
