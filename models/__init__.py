"""Typed events: what tariffstream reads and writes, and how bytes become them."""
