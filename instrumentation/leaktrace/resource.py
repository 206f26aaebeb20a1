"""The OTel resource shared by every signal."""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource

from .config import Settings


def build_resource(settings: Settings) -> Resource:
    attrs: dict[str, str | int] = dict(settings.resource_attributes)
    attrs.update(
        {
            "service.name": settings.service_name,
            "service.version": settings.service_version,
            "service.instance.id": settings.service_instance_id,
            "deployment.environment": settings.deployment_environment,
            "deployment.environment.name": settings.deployment_environment,
            "telemetry.distro.name": "leaktrace",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "process.pid": os.getpid(),
        }
    )
    # Resource(...) rather than Resource.create(): create() would read OTEL_* env again and
    # undo the precedence Settings already applied.
    return Resource(attrs)
