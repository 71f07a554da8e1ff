"""The domain core: every rule of the product as plain functions over plain data.

Nothing here reads the wall clock or does I/O; event times are passed in. The
Faust agents, ``tariffstream analyze`` and the tests all run this same code.
"""
