"""One adapter per channel: how to address a contact, compose a message and hand it over."""

from activities.channels.base import ChannelSender, Outgoing

__all__ = ["ChannelSender", "Outgoing"]
