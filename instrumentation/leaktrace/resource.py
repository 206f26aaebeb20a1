"""The OTel resource shared by every signal."""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource

from .setting_groups import ServiceIdentity


def build_resource(service: ServiceIdentity) -> Resource:
    attrs: dict[str, str | int] = dict(service.resource_attributes)
    attrs.update(
        {
            "service.name": service.service_name,
            "service.version": service.service_version,
            "service.instance.id": service.service_instance_id,
            "deployment.environment": service.deployment_environment,
            "deployment.environment.name": service.deployment_environment,
            "telemetry.distro.name": "leaktrace",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "process.pid": os.getpid(),
        }
    )
    # Resource(...) rather than Resource.create(): create() would read OTEL_* env again and
    # undo the precedence Settings already applied.
    return Resource(attrs)
