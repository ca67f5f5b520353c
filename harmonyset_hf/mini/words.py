"""Word tables for HarmonySet-mini's synthetic annotations (topics, moods, styles, colours)."""

from __future__ import annotations

# What a clip of each subcategory shows (used in titles, theme sections and MC options).
TOPICS: dict[str, str] = {
    "Family": "a family afternoon at home", "Relationships": "a couple's day together",
    "Friendship": "friends on a weekend trip", "Social": "a neighbourhood get-together",
    "Memories": "old photos brought back to life", "Emotion": "a quiet moment of reflection",
    "Cooking": "a home-cooked dinner being made", "Pets": "a playful puppy in the garden",
    "Vlogs": "a day in a student's life", "Art": "a painting taking shape",
    "Photography": "a photographer's golden-hour shoot", "Sculpture": "clay turned into a sculpture",
    "Movie": "a short film trailer", "Programs": "a behind-the-scenes look at a TV show",
    "Dance": "a street dance routine", "Magic": "a close-up card trick", "Theatre": "a stage rehearsal",
    "Music": "a band jamming in a garage", "Scenery": "a mountain lake at dawn",
    "Nature": "waves rolling onto a beach", "Travel": "a backpacker crossing a city",
    "CulturalHeritage": "an ancient temple complex", "Themepark": "a roller coaster ride",
    "Celebrations": "a birthday party", "Festivals": "a lantern festival at night",
    "Fitness": "a morning workout", "Sports": "a basketball match", "Competitions": "a cycling race finish",
    "Wildlife": "deer grazing in a forest", "Outdoors": "a hike along a ridge",
    "Technology": "a new laptop being unboxed", "Gadgets": "a smartwatch review",
    "Vehicles": "a sports car on a coastal road", "Fashion": "a runway walk",
    "Style": "an outfit-of-the-day try-on", "Makeup": "an evening makeup tutorial",
    "Howto": "how to fold a paper crane", "Tutorial": "a drawing tutorial",
    "Productivity": "a tidy desk set-up", "Lifehacks": "three kitchen life hacks",
    "DIY": "a wooden shelf built from scratch", "History": "the story of an old castle",
    "Economy": "a market explained in one minute",
}
# Culture elements a subcategory's clips usually show (anything else: no culture element).
CULTURE_OF_SUBCATEGORY: dict[str, list[str]] = {
    "Cooking": ["cuisines"], "Festivals": ["customs", "clothing"], "Celebrations": ["customs"],
    "CulturalHeritage": ["landmarks"], "Travel": ["landmarks"], "History": ["landmarks"],
    "Fashion": ["clothing"], "Style": ["clothing"], "Makeup": ["clothing"], "Theatre": ["customs"],
    "Dance": ["clothing", "customs"],
}
# Mode x tempo -> how the music sounds and which emotions it carries.
MOODS: dict[str, dict] = {
    "major-fast": {"words": "bright and upbeat", "emotions": ["happy", "hope"]},
    "major-slow": {"words": "calm and warm", "emotions": ["relax", "hope"]},
    "minor-fast": {"words": "tense and driving", "emotions": ["anxious", "surprise"]},
    "minor-slow": {"words": "melancholic and gentle", "emotions": ["sad", "fear"]},
}
OPPOSITE: dict[str, str] = {"happy": "sad", "sad": "happy", "hope": "fear", "fear": "hope", "relax": "anxious",
                            "anxious": "relax", "surprise": "relax", "angry": "relax", "creative": "sad",
                            "humor": "sad"}
# Timbre -> (music style, where it comes from).
STYLES: dict[str, tuple[str, str]] = {
    "warm pad": ("soft ambient pop", "a globally familiar Western pop sound"),
    "bright saw": ("electronic synth-pop", "rooted in European club music"),
    "hollow square": ("retro chiptune", "born in Japanese video-game culture"),
    "glass bell": ("music-box style pop", "reminiscent of East Asian lullabies"),
}
RELATION: dict[str, str] = {
    "strongly related": "The {style} soundtrack fits this subject closely.",
    "indirectly related": "The {style} soundtrack connects to the subject only loosely, through its general mood.",
    "unrelated": "The {style} soundtrack has no real connection to the subject.",
    "conflicting": "The {style} soundtrack works against the subject, as if meant for another video.",
}
NARRATIVE: dict[str, str] = {
    "enhancement": "It strengthens the story the images tell.",
    "suggestion": "It hints at the story's mood without spelling it out.",
    "reversing": "It gives the scene an ironic, reversed reading.",
    "independent": "It runs alongside the images as an independent layer.",
    "no supplement": "It adds nothing to the narrative.",
}
# content_alignment -> a short MC phrase.
NARRATIVE_SHORT: dict[str, str] = {
    "strongly related": "closely tied to it and strengthens the story",
    "indirectly related": "loosely tied to it, hinting at the mood",
    "unrelated": "unconnected to it, an independent layer",
    "conflicting": "at odds with it, turning the story ironic",
}
ADJECTIVES: dict[str, str] = {"fear": "fearful", "hope": "hopeful", "surprise": "surprised", "humor": "humorous",
                              "relax": "relaxed"}
RELEVANCE_SHORT: dict[str, str] = {
    "related": "well matched to that cultural setting",
    "misuse": "at odds with that cultural setting",
    "unrelated": "not tied to any cultural setting",
}
# HarmonySet-MC: question wordings per aspect, and how a rhythm option states each sync code.
QUESTIONS = {
    "rhythm": ["How does the music's rhythm follow the visual turns of this video?",
               "Which description best matches the synchronization between the music and the cuts?"],
    "theme": ["Which statement best describes how the music fits the content of the video?",
              "How does the soundtrack relate to what the video is about?"],
    "emotion": ["Which option best describes the emotional relationship between the music and the video?",
                "How do the emotions of the music and of the images relate?"],
    "culture": ["Which option best describes the cultural elements and the music's cultural fit?",
                "How does the music relate to the cultural context of the video?"],
}
CODE_PHRASE = {"A": "changes section exactly on the cut at {ts}", "B": "changes about a second off the cut at {ts}",
                "C": "carries on unchanged through the cut at {ts}"}
# Ten AudioSet labels per clip, "Music" among the top 2 (the paper's PANNs filter).
AUDIO_LABELS: tuple[str, ...] = (
    "Music", "Musical instrument", "Electronic music", "Synthesizer", "Drum", "Drum kit", "Beat", "Pop music",
    "Bass drum", "Cymbal", "Hi-hat", "Keyboard (musical)", "Ambient music", "Speech", "Snare drum",
)
_COLOURS = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "teal"), (255, "blue"),
            (290, "purple"), (335, "pink"), (360, "red"))


def colour_name(hue: float) -> str:
    """A plain colour word for a hue in degrees."""
    return next(name for limit, name in _COLOURS if hue % 360 < limit)
