from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0007_study_early_scoring_queued_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="pixel_layout",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
