"""Every model, imported in one place so that Alembic and the tests see the whole schema."""

from backend.alerts.models import Alert, AlertDelivery, Cluster, ClusterReport
from backend.audit.models import AuditEntry
from backend.councils.models import CouncilArea
from backend.devices.models import Device
from backend.exports.models import Export
from backend.extensions import Base
from backend.heatmap.models import HeatmapCell, HeatmapReporter, HeatmapRetained, HeatmapTotal, Station
from backend.hubs.models import SafeHub
from backend.open311.models import CouncilApiKey
from backend.outbox.models import OutboxTask
from backend.reports.models import Report, ReportStatusChange
from backend.streets.models import StreetEdge, StreetNetwork, StreetSegment, StreetVertex
from backend.users.models import User
from backend.webhooks.models import WebhookDelivery, WebhookSubscription

__all__ = [
    "Alert", "AlertDelivery", "AuditEntry", "Base", "Cluster", "ClusterReport", "CouncilApiKey", "CouncilArea", "Device", "Export",
    "HeatmapCell", "HeatmapReporter", "HeatmapRetained", "HeatmapTotal", "OutboxTask", "Report", "ReportStatusChange",
    "SafeHub", "Station", "StreetEdge", "StreetNetwork", "StreetSegment", "StreetVertex", "User", "WebhookDelivery",
    "WebhookSubscription",
]
