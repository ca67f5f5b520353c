"""Release files -> canonical records -> a Hub folder (build, card, load, push, export); the videos the release
names, downloaded (videos, video_fetch) and found again for an annotations-only folder (video_folder)."""
