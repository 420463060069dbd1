"""Everything that touches the world: rendering, email, the message log, lifecycle records.

The worker builds these once, with their dependencies, and registers `JourneyActivities`'
methods; nothing here is a module-level global.
"""

from activities.email import (
    DeliveryUncertainError,
    Mailer,
    SmtpMailer,
    build_email,
    message_id_header,
    sender_domain,
)
from activities.journey_activities import JourneyActivities, Starter
from activities.rendering import RenderedEmail, TemplateRenderer

__all__ = [
    "DeliveryUncertainError",
    "JourneyActivities",
    "Mailer",
    "RenderedEmail",
    "SmtpMailer",
    "Starter",
    "TemplateRenderer",
    "build_email",
    "message_id_header",
    "sender_domain",
]
