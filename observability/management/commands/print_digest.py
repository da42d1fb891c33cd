from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from observability.digest import build_digest, render_text
from observability.models import DigestPeriod
from tenancy.models import Organization


class Command(BaseCommand):
    help = "Print an organization's failure digest for the last complete day or week (nothing is sent)."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="organization slug")
        parser.add_argument("--period", choices=DigestPeriod.values, default=DigestPeriod.DAILY)
        parser.add_argument(
            "--until",
            default="",
            help="the period is the last complete one before this date or time (ISO 8601, UTC); default now",
        )

    def handle(self, *args, organization: str, period: str, until: str, **options):
        org = Organization.objects.filter(slug=organization).first()
        if org is None:
            raise CommandError(f"no organization with slug {organization!r}")
        moment = timezone.now()
        if until:
            parsed = parse_datetime(until)
            if parsed is None and parse_date(until) is not None:
                parsed = parse_datetime(f"{until}T00:00:00")
            if parsed is None:
                raise CommandError(f"--until: not an ISO date or time: {until!r}")
            moment = (
                parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_fixed_timezone(0))
            )
        self.stdout.write(render_text(build_digest(org, period, moment)), ending="")
