
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('executions', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='FailureDigest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period', models.CharField(choices=[('daily', 'Daily'), ('weekly', 'Weekly')], max_length=16)),
                ('period_start', models.DateTimeField()),
                ('period_end', models.DateTimeField()),
                ('runs_finished', models.PositiveIntegerField(default=0)),
                ('success_rate', models.FloatField(blank=True, help_text='success / (success + error + system_error)', null=True)),
                ('system_errors', models.PositiveIntegerField(default=0)),
                ('workflow_errors', models.PositiveIntegerField(default=0, help_text='user and external errors (status error)')),
                ('subject', models.CharField(blank=True, default='', max_length=300)),
                ('body', models.TextField(blank=True, default='')),
                ('data', models.JSONField(blank=True, default=dict)),
                ('recipients', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='failure_digests', to='executions.organization')),
            ],
            options={
                'ordering': ['-period_start', 'organization_id'],
                'constraints': [models.UniqueConstraint(fields=('organization', 'period', 'period_start'), name='digest_org_period_unique')],
            },
        ),
    ]
