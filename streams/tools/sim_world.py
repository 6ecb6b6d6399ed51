"""The simulator's made-up world (the simulated theatre): what
`streams.tools.simulate.Simulator` draws its events and reports from.

Its places (the gazetteer's, the Lachin corridor road, the names each side uses), its areas
with their tempo and mix of categories (`ZONES`), the sources with the areas they watch
and how often they report (`SOURCES`), how each kind of source states an event's time and
place (`JITTER`, `DAY_SHARE`, `TIME_SAID`, `TOWN_SHARE`), what it names (`PLACE_SHARE`,
`TARGET_SHARE`) and how often it revises or withdraws (`FOLLOW_UPS`), and the words the
parties, the media and ACLED use. Plain data; docs/record.md ("Linking quality") has the
table of it that the linking figures are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone

#: Baku and Yerevan both keep UTC+4; the parties' statements and local media use it.
LOCAL_TZ = timezone(timedelta(hours=4))

#: Gazetteer points (lat, lon). Only these names are ever sent as `location.place`.
PLACES: dict[str, tuple[float, float]] = {
    "Stepanakert": (39.815, 46.752),
    "Shusha": (39.758, 46.748),
    "Lachin": (39.640, 46.545),
    "Aghdam": (39.993, 46.930),
    "Martuni": (39.795, 47.113),
    "Martakert": (40.213, 46.813),
    "Askeran": (39.935, 46.787),
    "Hadrut": (39.520, 47.030),
    "Kalbajar": (40.107, 46.038),
    "Goris": (39.511, 46.339),
    "Kornidzor": (39.545, 46.430),
}

#: The Lachin corridor road, Stepanakert to the Armenian border near Kornidzor.
CORRIDOR_ROAD: tuple[tuple[float, float], ...] = (
    (39.815, 46.752),  # Stepanakert
    (39.758, 46.748),  # Shusha
    (39.700, 46.640),
    (39.640, 46.545),  # Lachin / Berdzor
    (39.600, 46.480),
    (39.545, 46.430),  # Kornidzor border crossing
)

#: Local names the sides use in free text (descriptions only, never in `location`).
LOCAL_NAMES: dict[str, dict[str, str]] = {
    "az": {
        "Stepanakert": "Khankendi",
        "Martakert": "Aghdara",
        "Martuni": "Khojavend",
        "Lachin": "Lachin",
    },
    "am": {"Shusha": "Shushi", "Lachin": "Berdzor", "Kalbajar": "Karvachar"},
}

# category codes (schemas.codes.Category), short names for the tables below
SMALL_ARMS, HEAVY = "small_arms_fire", "heavy_weapons_fire"
DRONE, AIRSPACE = "drone_strike", "airspace_violation"
ADVANCE, WORKS, OBSTRUCTION = "positional_advance", "engineering_works", "obstruction_of_movement"
PKF_ATTACK, CIV_HARM, DETENTION = "attack_on_peacekeepers", "civilian_harm", "detention"
PROPERTY, MINE, OTHER = "property_destruction", "mine_incident", "other"

#: What acoustic and radar sensors can pick up.
SENSED = (SMALL_ARMS, HEAVY, DRONE, AIRSPACE, MINE, OTHER)

FIRE_MIX: dict[str, float] = {
    SMALL_ARMS: 46,
    HEAVY: 7,
    DRONE: 3,
    AIRSPACE: 6,
    ADVANCE: 3,
    WORKS: 9,
    OBSTRUCTION: 2,
    PKF_ATTACK: 0.6,
    CIV_HARM: 3,
    DETENTION: 1,
    PROPERTY: 3,
    MINE: 4,
    OTHER: 3,
}


@dataclass(frozen=True)
class SimZone:
    """One area of the theatre as the simulator sees it (not the classifier's polygons)."""

    code: str
    rate: float  # relative base rate of incidents
    #: (place name or None, lat, lon, weight); a None name is never sent as a place
    sites: tuple[tuple[str | None, float, float, float], ...]
    categories: dict[str, float]
    #: the two sides facing each other here, as party codes
    sides: tuple[str, str]
    jitter_km: float = 3.0
    along_road: bool = False


ZONES: tuple[SimZone, ...] = (
    SimZone(
        "loc-north",
        3.0,
        (
            ("Martakert", *PLACES["Martakert"], 3),
            (None, 40.160, 46.900, 1),
            (None, 40.270, 46.760, 1),
        ),
        FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "loc-east",
        3.5,
        (
            ("Askeran", *PLACES["Askeran"], 3),
            ("Aghdam", *PLACES["Aghdam"], 1),
            (None, 39.960, 46.860, 2),
        ),
        FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "loc-south",
        3.0,
        (
            ("Martuni", *PLACES["Martuni"], 3),
            ("Hadrut", *PLACES["Hadrut"], 2),
            (None, 39.650, 47.060, 1),
        ),
        FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "lachin-corridor",
        1.8,
        (
            ("Lachin", *PLACES["Lachin"], 2),
            ("Kornidzor", *PLACES["Kornidzor"], 1),
            ("Shusha", *PLACES["Shusha"], 1),
        ),
        {
            OBSTRUCTION: 30,
            DETENTION: 8,
            SMALL_ARMS: 10,
            CIV_HARM: 5,
            PKF_ATTACK: 1.5,
            AIRSPACE: 4,
            WORKS: 4,
            MINE: 2,
            PROPERTY: 2,
            OTHER: 6,
        },
        ("az", "nk"),
        jitter_km=0.8,
        along_road=True,
    ),
    SimZone(
        "shusha",
        0.8,
        (("Shusha", *PLACES["Shusha"], 1),),
        {SMALL_ARMS: 20, WORKS: 6, AIRSPACE: 4, CIV_HARM: 4, PROPERTY: 3, OBSTRUCTION: 3, OTHER: 3},
        ("az", "nk"),
        jitter_km=1.5,
    ),
    SimZone(
        "stepanakert",
        0.7,
        (("Stepanakert", *PLACES["Stepanakert"], 1),),
        {AIRSPACE: 10, DRONE: 3, CIV_HARM: 8, SMALL_ARMS: 6, PROPERTY: 4, DETENTION: 2, OTHER: 4},
        ("az", "nk"),
        jitter_km=2.0,
    ),
    SimZone(
        "returned-districts",
        1.6,
        (
            ("Aghdam", *PLACES["Aghdam"], 3),
            ("Kalbajar", *PLACES["Kalbajar"], 2),
            (None, 39.580, 46.620, 1),  # Lachin district south of the road
            (None, 39.440, 46.780, 1),  # Zangilan/Qubadli side
        ),
        {MINE: 40, PROPERTY: 6, SMALL_ARMS: 6, WORKS: 6, CIV_HARM: 4, OTHER: 4},
        ("az", "nk"),
        jitter_km=5.0,
    ),
    SimZone(
        "border-syunik",
        1.2,
        (("Goris", *PLACES["Goris"], 2), (None, 39.380, 46.400, 2), (None, 39.800, 45.980, 1)),
        {SMALL_ARMS: 30, HEAVY: 5, ADVANCE: 6, WORKS: 10, DRONE: 2, DETENTION: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=4.0,
    ),
    SimZone(
        "border-gegharkunik",
        0.9,
        ((None, 40.200, 45.930, 2), (None, 40.050, 45.800, 1)),  # Sotk, Verin Shorzha
        {SMALL_ARMS: 30, HEAVY: 4, ADVANCE: 5, WORKS: 8, DRONE: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=3.0,
    ),
    SimZone(
        "border-tavush",
        0.6,
        ((None, 40.950, 45.300, 1), (None, 40.870, 45.400, 1)),  # Berd, Aygepar / Tovuz side
        {SMALL_ARMS: 35, HEAVY: 3, WORKS: 8, AIRSPACE: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=3.0,
    ),
)
ZONE_BY_CODE = {z.code: z for z in ZONES}

#: Probability that an event of the category has someone killed / wounded (outside bursts).
#: Tuned so that about 2 % of all reports have someone killed and about 5 % wounded: an
#: event with casualties is reported by more sources, and the parties add wounded.
CASUALTY_ODDS: dict[str, tuple[float, float]] = {
    SMALL_ARMS: (0.0045, 0.012),
    HEAVY: (0.022, 0.05),
    DRONE: (0.06, 0.09),
    PKF_ATTACK: (0.045, 0.12),
    CIV_HARM: (0.04, 0.1),
    MINE: (0.02, 0.04),
    DETENTION: (0.0, 0.01),
    PROPERTY: (0.0, 0.008),
}


@dataclass(frozen=True)
class Source:
    name: str
    source_type: str
    weight: float
    zones: tuple[str, ...] = ()  # where it reports; empty: anywhere
    #: which side the source speaks for (party statements), or None
    side: str | None = None
    #: typical minutes between event and report (mean of an exponential)
    lag_minutes: float = 15.0
    local_time: bool = False


KARABAKH = ("loc-north", "loc-east", "loc-south", "lachin-corridor", "shusha", "stepanakert")
_BORDER = ("border-syunik", "border-gegharkunik", "border-tavush")

SOURCES: tuple[Source, ...] = (
    Source("pkf-op-03", "observation_post", 3, ("loc-north",), lag_minutes=8),
    Source("pkf-op-07", "observation_post", 3, ("loc-east",), lag_minutes=8),
    Source("pkf-op-12", "observation_post", 3, ("loc-east", "returned-districts"), lag_minutes=8),
    Source("pkf-op-18", "observation_post", 3, ("loc-south",), lag_minutes=8),
    Source("pkf-op-21", "observation_post", 2, ("lachin-corridor", "shusha"), lag_minutes=8),
    Source("pkf-op-26", "observation_post", 1.5, ("stepanakert", "shusha"), lag_minutes=8),
    Source("pkf-patrol-2", "patrol", 2, ("lachin-corridor",), lag_minutes=25),
    Source("pkf-patrol-5", "patrol", 1.5, ("loc-east", "loc-south"), lag_minutes=25),
    Source("sensor-net-1", "sensor", 1.5, ("lachin-corridor", "loc-east"), lag_minutes=0.5),
    Source("jmc-aghdam", "monitoring_centre", 2, KARABAKH, lag_minutes=60),
    Source("az-mod", "party_statement", 1.8, (), side="az", lag_minutes=120, local_time=True),
    Source("am-mod", "party_statement", 1.5, _BORDER, side="am", lag_minutes=120, local_time=True),
    Source(
        "nk-defence-army",
        "party_statement",
        2,
        KARABAKH,
        side="nk",
        lag_minutes=180,
        local_time=True,
    ),
    Source("media-apa", "media", 0.6, (), lag_minutes=180, local_time=True),
    Source("media-armenpress", "media", 0.6, (), lag_minutes=180, local_time=True),
    Source(
        "hotline-civ",
        "civilian",
        0.8,
        ("stepanakert", "shusha", "lachin-corridor", "returned-districts", "border-syunik"),
        lag_minutes=45,
    ),
    Source(
        "ngo-halo-demining",
        "ngo",
        0.7,
        ("returned-districts", "loc-east", "loc-south"),
        lag_minutes=1440,
    ),
    # ACLED-style imports: a day, a point or a town, the killed only; weekly, days late
    Source("acled", "dataset", 0.3, (), lag_minutes=4 * 1440),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}

#: How each side names the other in its statements (mostly matched aliases, a few
#: phrases no alias list knows: they map to `unknown` and are kept verbatim).
ACCUSES: dict[str, dict[str, tuple[str, ...]]] = {
    "az": {
        "nk": (
            "Armenian Armed Forces",
            "illegal Armenian armed detachments",
            "Artsakh Defence Army",
            "Armenia",
            "local Armenian formations",
        ),
        "am": ("Armenian Armed Forces", "AM MoD", "Armenia", "Armed Forces of Armenia"),
    },
    "am": {"az": ("Azerbaijani Armed Forces", "AZ MoD", "Azerbaijan", "the Azerbaijani side")},
    "nk": {"az": ("Azerbaijani Armed Forces", "Azerbaijan", "AFA", "units of the adversary")},
}
#: How each side names itself as the target of the other's fire.
SELF_NAMES: dict[str, tuple[str, ...]] = {
    "az": ("Azerbaijani Armed Forces", "Azerbaijan", "AZ MoD"),
    "am": ("Armenian Armed Forces", "Armenia", "AM MoD"),
    "nk": ("Artsakh Defence Army", "NK Defense Army"),
}
#: How the mission and third parties name a side.
NEUTRAL_NAMES: dict[str, tuple[str, ...]] = {
    "az": ("az", "Azerbaijan", "Azerbaijani Armed Forces"),
    "am": ("am", "Armenia", "Armenian Armed Forces"),
    "nk": ("nk", "NK Defense Army", "Artsakh Defence Army"),
}
PEACEKEEPERS = ("Russian peacekeepers", "RPKF", "ru-pkf", "15th Motorised Rifle Brigade")

WHAT: dict[str, tuple[str, ...]] = {
    SMALL_ARMS: (
        "fire from small arms",
        "sniper fire",
        "automatic weapons fire",
        "bursts of machine-gun fire",
    ),
    HEAVY: ("mortar fire", "artillery fire", "fire from a tank", "122 mm howitzer fire"),
    DRONE: ("a strike by an armed UAV", "a loitering munition strike", "a drone strike"),
    AIRSPACE: (
        "a UAV overflight",
        "a reconnaissance drone over the positions",
        "an overflight by a quadcopter",
    ),
    ADVANCE: (
        "troops moving beyond their positions",
        "a unit advancing towards the line",
        "an attempt to occupy a height",
    ),
    WORKS: (
        "new trenches being dug",
        "fortification works near the line",
        "an engineering vehicle building a new position",
    ),
    OBSTRUCTION: (
        "the road being blocked",
        "vehicles stopped at an improvised checkpoint",
        "a peacekeeping convoy being held up",
    ),
    PKF_ATTACK: (
        "fire at a peacekeeping post",
        "stones thrown at a peacekeepers' patrol",
        "shots at a peacekeepers' vehicle",
    ),
    CIV_HARM: (
        "fire at farmers in the fields",
        "shots at a civilian car",
        "threats against residents",
    ),
    DETENTION: (
        "the detention of two residents",
        "a serviceman captured",
        "civilians taken at a checkpoint",
    ),
    PROPERTY: ("houses set on fire", "a water pipeline damaged", "a power line cut"),
    MINE: (
        "an anti-personnel mine explosion",
        "a tractor hitting an anti-tank mine",
        "newly laid mines found",
        "an unexploded shell going off",
    ),
    OTHER: (
        "an unidentified explosion",
        "flares launched over the positions",
        "loudspeaker broadcasts across the line",
    ),
}


#: How precisely each kind of source states an event's time and place: standard deviations
#: (time in minutes; place in km along each axis) of a normal error, cut at 3 sigma.
#: Sensors time-stamp to the second and triangulate to a couple of hundred metres; posts
#: and patrols report what they saw or heard minutes later, placed on their maps; the
#: parties' statements say "at about 14:30, in the direction of <village>" (their times are
#: also rounded to 5 minutes); media and callers retell. A dataset gives only the day.
JITTER: dict[str, tuple[float, float]] = {
    "sensor": (0.2, 0.15),
    "observation_post": (3.0, 0.3),
    "patrol": (5.0, 0.4),
    "monitoring_centre": (5.0, 0.5),
    "party_statement": (8.0, 0.8),
    "media": (10.0, 1.0),
    "civilian": (10.0, 0.6),
    "ngo": (20.0, 0.1),
    "dataset": (0.0, 0.8),
}
#: Share of each kind's reports that give only the day (`time_precision: day`; the time
#: they state: `_day_time`): ACLED codes days; media retell "on Tuesday"; deminers date what
#: they found.
DAY_SHARE: dict[str, float] = {"dataset": 1.0, "ngo": 0.5, "media": 0.3, "civilian": 0.05}
#: Share of the day-precision texts of these kinds that state a clock time, and that name a
#: part of the day instead (`_time_said`): of nine ministry statements and agency articles
#: about border fire looked at for this, three gave a clock time ("at around 12:30 p.m.
#: local time", "from 22:00 to 22:20"), three a part of the day ("on September 13
#: evening", "this morning"), three neither ("on Thursday", "during the day"). ACLED's
#: notes repeat what the statement they were coded from says; a caller says when. Deminers
#: date what they found, not when it went off: none.
TIME_SAID: dict[str, tuple[float, float]] = {
    "dataset": (1 / 3, 1 / 3),
    "media": (1 / 3, 1 / 3),
    "civilian": (1 / 3, 1 / 3),
}
#: Share of each kind's reports that give the nearest town rather than a point
#: (`location.precision: town`: the place name alone, or the town's point), when a
#: gazetteer town of the event's zone lies within TOWN_KM of it.
TOWN_SHARE: dict[str, float] = {
    "dataset": 0.5,
    "media": 0.5,
    "party_statement": 0.4,
    "civilian": 0.3,
    "monitoring_centre": 0.1,
}
TOWN_KM = 6.0
#: Share of each kind's reports with a point that also name a place ("1.5 km from
#: Martuni", "in the direction of Hadrut"): the event's nearest gazetteer place within
#: NAMED_KM, or now and then (`NEIGHBOUR_SHARE`) the next nearest: sources name the village
#: they know, the road or the position's, not always the nearest. Sensors name none.
PLACE_SHARE: dict[str, float] = {
    "observation_post": 0.5,
    "patrol": 0.6,
    "monitoring_centre": 0.7,
    "party_statement": 0.7,
    "media": 0.8,
    "civilian": 0.6,
    "ngo": 0.8,
    "dataset": 1.0,  # ACLED's `location` is always a named settlement
}
NAMED_KM = 10.0
NEIGHBOUR_SHARE = 0.2
#: Share of each kind's reports (not a party's own statements: those name their own side
#: as hit, `_attribution`) that say whom the fire hit, when the event hit someone: a post
#: sees the impacts on a side's positions without always saying who fired; ACLED's
#: `actor2`; each side's news agency names its own side, like its ministry.
TARGET_SHARE: dict[str, float] = {
    "observation_post": 0.6,
    "patrol": 0.6,
    "monitoring_centre": 0.8,
    "media": 0.7,
    "civilian": 0.5,
    "ngo": 0.5,
    "dataset": 0.9,
}
#: Share of the target statements above that name the wrong side (misread positions, a
#: dataset coded from the other side's statement).
TARGET_ERROR = 0.1
#: Categories a post or patrol sees or hears from its position.
NOTICED = frozenset({SMALL_ARMS, HEAVY, DRONE, AIRSPACE, MINE, PKF_ATTACK, ADVANCE, WORKS})
FIRE = frozenset({SMALL_ARMS, HEAVY, DRONE})
#: The mission's own sources: accurate figures (or partial ones, corrected later).
MISSION = frozenset({"observation_post", "patrol", "sensor", "monitoring_centre", "ngo"})
#: Categories ACLED codes as political violence (what a dataset import carries).
CODED = frozenset({SMALL_ARMS, HEAVY, DRONE, MINE, CIV_HARM, PKF_ATTACK, DETENTION, PROPERTY})
#: Revisions and withdrawals, per kind of source: (share of reports revised later, share
#: withdrawn later). A post's report whose first figures were partial is revised more often
#: (see `_figures`).
FOLLOW_UPS: dict[str, tuple[float, float]] = {
    "observation_post": (0.03, 0.01),
    "patrol": (0.03, 0.01),
    "sensor": (0.0, 0.02),
    "monitoring_centre": (0.05, 0.01),
    "party_statement": (0.10, 0.01),
    "media": (0.08, 0.04),
    "civilian": (0.03, 0.06),
    "ngo": (0.05, 0.01),
    "dataset": (0.12, 0.01),
}
#: How the parties' ministries name themselves as claimants.
CLAIMANTS: dict[str, tuple[str, ...]] = {
    "az": ("az", "AZ MoD", "Ministry of Defence of Azerbaijan"),
    "am": ("am", "AM MoD", "Ministry of Defence of Armenia"),
    "nk": ("nk", "Artsakh Defence Army", "NKR MoD"),
}
#: ACLED's actor names (regime periods included, as ACLED writes them).
ACLED_ACTORS: dict[str, str] = {
    "az": "Military Forces of Azerbaijan (2003-)",
    "am": "Military Forces of Armenia (2018-)",
    "nk": "Military Forces of Artsakh (1994-2023)",
    "unknown": "Unidentified Armed Group (Azerbaijan)",
}
#: Which side a news agency's country is on: it names the other side.
MEDIA_SIDE = {"media-apa": "az", "media-armenpress": "am"}
