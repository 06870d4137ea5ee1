"""Write calibration/generic/calibration.jsonl: general English prose on everyday topics.

Every paragraph is composed here from sentence templates and word banks written
for this project (weather, cooking, travel, invented local history, science
explanations, gardening, community life); towns and people are invented. No
third-party text. Seeded: rerunning reproduces the file byte for byte.
Usage: .venv/bin/python -m calibration._generators.generic [--seed 2024] [--out DIR]
"""

from __future__ import annotations

import random
from pathlib import Path

from calibration._generators._common import (
    ROOT,
    build_samples,
    main,
    paragraph,
    write_set,
)

NAME = "generic"
SEED = 2024

_PREFIXES = ["Ash", "Bram", "Cor", "Dun", "El", "Fen", "Gar", "Hol", "Kes", "Lin", "Mar", "Nor",
             "Or", "Pen", "Rav", "Sel", "Tar", "Wex", "Thorn", "Bel", "Cal", "Hart", "Mill", "Stan"]
_SUFFIXES = ["ford", "by", "wick", "mouth", "ham", "stead", "field", "bridge", "combe", "haven",
             "moor", "dale", "ton", "well", "burn", "gate"]


def _town(rng: random.Random) -> str:
    return rng.choice(_PREFIXES) + rng.choice(_SUFFIXES)


def _num(lo: int, hi: int):
    return lambda rng: str(rng.randint(lo, hi))


COMMON = {
    "town": _town,
    "first": ["Anna", "Tomas", "Priya", "Jonah", "Mei", "Carlos", "Ingrid", "Samuel", "Leila", "Oskar",
              "Ruth", "Daniel", "Amara", "Felix", "Hana", "Marco", "Nadia", "Peter", "Sofia", "Yusuf",
              "Clara", "Ibrahim", "Elena", "George", "Aiko", "Lucas", "Maya", "Victor", "Zainab", "Hugo"],
    "last": ["Harrow", "Bell", "Okafor", "Lindqvist", "Moreau", "Castillo", "Fairweather", "Novak",
             "Sato", "Brennan", "Achterberg", "Quill", "Ramirez", "Whitlock", "Osei", "Petrov",
             "Duval", "Kowalski", "Marsh", "Tanaka", "Abbott", "Ferreira", "Holm", "Iqbal"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"],
    "direction": ["north", "south", "east", "west", "north-west", "south-west", "north-east", "south-east"],
}

# --- weather ----------------------------------------------------------------------------------

_SEASON_TEMPS = {"spring": (8, 18), "summer": (18, 31), "autumn": (6, 16), "winter": (-6, 7)}
_SEASON_MONTHS = {"spring": ["March", "April", "May"], "summer": ["June", "July", "August"],
                  "autumn": ["September", "October", "November"], "winter": ["December", "January", "February"]}
WEATHER = {
    **COMMON,
    "sky_start": ["grey and still", "bright and cold", "under a low blanket of cloud", "in thick fog",
                  "with a light drizzle", "clear and sharp", "with a pink sky over the hills"],
    "forecast_adj": ["changeable", "settled", "unsettled", "mild", "blustery", "calm"],
    "wind_adj": ["gentle", "steady", "gusty", "biting", "warm", "fresh"],
    "cloud_change": ["thinned into long streaks", "thickened over the hills", "broken up completely",
                     "gathered into towering shapes", "drifted out to sea"],
    "carry_item": ["umbrellas", "light jackets", "sun hats", "spare jumpers", "waterproof coats"],
    "farm_concern": ["a late frost could still damage the blossom", "the hay needed three dry days in a row",
                     "the river had been running high for weeks", "the soil was too dry to sow",
                     "the lambs were due any day"],
    "rain_compare": ["well above", "slightly below", "roughly half of", "almost double", "close to"],
    "front_type": ["heavy showers", "warm, humid air", "a cold front", "low cloud", "scattered thunderstorms"],
    "front_effect": ["a sudden drop in temperature", "short bursts of hail", "a rainbow over the bay",
                     "the first proper rain in weeks", "a few rumbles of thunder and little else"],
    "child_action": ["splashed through every puddle they could find", "raced the clouds to the bus stop",
                     "stopped to watch the geese flying low over the fields", "held their coats open like sails"],
    "year_ref": ["long, dry", "stormy", "famously wet", "bitterly cold"],
    "memory": ["the river froze solid for a week", "the harbour wall was breached",
               "the school closed for three days", "nobody saw the sun for a month"],
    "fog_cause": ["a sea mist rolled in without warning", "warm air drifted over the cold water",
                  "the wind dropped completely in the late afternoon"],
    "ferry_state": ["ran on time despite the swell", "was cancelled for the second day running",
                    "left an hour late while the crew waited for the wind to ease"],
    "outlook": ["mixed, with sunny spells between the showers", "dry and settled under high pressure",
                "cooler than usual, with frost likely in sheltered valleys", "warm and humid, with a risk of storms"],
    "wind_evening": ["died away to almost nothing", "swung round to the north", "picked up again along the coast"],
    "street_state": ["quiet", "busy with people heading home", "shining under the lamps", "full of fallen leaves"],
    "outlook_short": ["brighter", "wetter", "colder", "much the same"],
    "temp_change": ["climbed", "slipped", "rose", "crept up"],
}
WEATHER_OPEN = [
    "The morning in {town} began {sky_start}, with the thermometer by the harbour reading {t1} degrees and a {wind_adj} wind coming in from the {direction}.",
    "Forecasters had promised {forecast_adj} {season} weather for {town}, and for once they were right.",
    "{Day} in {town} was one of those {season} days that cannot decide what it wants to be.",
    "Anyone who lives in {town} knows that {season} weather there rarely keeps to the forecast.",
]
WEATHER_MID = [
    "By midday the clouds had {cloud_change}, and the temperature {temp_change} to {t2} degrees.",
    "People on the high street carried {carry_item} just in case, although most of them never needed them.",
    "Farmers in the valley watched the sky closely, since {farm_concern}.",
    "The local weather station recorded {rain} millimetres of rain over the day, {rain_compare} the usual amount for {month}.",
    "A band of {front_type} moved across the region in the afternoon, bringing {front_effect}.",
    "Children walking home from school {child_action}.",
    "Older residents said it reminded them of the {year_ref} {season} when {memory}.",
    "Visibility on the coast road dropped to a few hundred metres when {fog_cause}.",
    "The ferry to the islands {ferry_state}.",
    "Gusts of up to {gust} kilometres an hour were measured on the headland.",
]
WEATHER_CLOSE = [
    "The outlook for the rest of the week is {outlook}.",
    "By evening the wind had {wind_evening}, and the streets were {street_state} again.",
    "Tomorrow is expected to be {outlook_short}, with highs near {t3} degrees.",
]


def weather(rng: random.Random) -> str:
    season = rng.choice(list(_SEASON_TEMPS))
    lo, hi = _SEASON_TEMPS[season]
    t1 = rng.randint(lo, hi - 4)
    return paragraph(rng, WEATHER, WEATHER_OPEN, WEATHER_MID, WEATHER_CLOSE, season=season, t1=t1,
                     month=rng.choice(_SEASON_MONTHS[season]),
                     t2=t1 + rng.randint(1, 4), t3=rng.randint(lo, hi), rain=rng.randint(0, 40),
                     gust=rng.randint(40, 110))


# --- cooking ----------------------------------------------------------------------------------

DISHES = [
    ("a vegetable soup", ["carrots", "leeks", "potatoes", "celery", "a bay leaf"]),
    ("a tomato and lentil stew", ["red lentils", "tinned tomatoes", "onions", "garlic", "cumin"]),
    ("a simple loaf of bread", ["strong flour", "yeast", "salt", "warm water", "a little oil"]),
    ("a mushroom risotto", ["rice", "mushrooms", "shallots", "stock", "grated cheese"]),
    ("an apple crumble", ["apples", "butter", "flour", "brown sugar", "cinnamon"]),
    ("a chickpea curry", ["chickpeas", "onions", "ginger", "coconut milk", "spinach"]),
    ("a potato and onion omelette", ["eggs", "potatoes", "onions", "olive oil", "parsley"]),
    ("a pot of vegetable broth", ["onions", "carrots", "celery", "peppercorns", "fresh herbs"]),
    ("a tray of roasted vegetables", ["squash", "peppers", "red onions", "olive oil", "rosemary"]),
    ("a batch of oat biscuits", ["oats", "butter", "golden syrup", "flour", "a pinch of salt"]),
    ("a bean and barley soup", ["pearl barley", "white beans", "carrots", "thyme", "stock"]),
    ("a rice pudding", ["short-grain rice", "milk", "sugar", "vanilla", "nutmeg"]),
]
COOKING = {
    **COMMON,
    "pan": ["a heavy pan", "a wide saucepan", "a large pot", "a cast-iron dish", "a deep frying pan"],
    "heat": ["a low heat", "a medium heat", "a gentle simmer", "a steady heat"],
    "soft": ["soft and sweet", "translucent", "lightly golden", "just tender"],
    "minutes": _num(5, 25),
    "oven": lambda rng: str(rng.choice([160, 170, 180, 190, 200, 220])),
    "tip_reason": ["it keeps the flavour from turning bitter", "the texture stays light",
                   "the liquid reduces evenly", "nothing sticks to the bottom"],
    "serve_with": ["crusty bread", "a green salad", "plain yoghurt", "steamed rice", "a squeeze of lemon"],
    "keeps": ["two days in the fridge", "a month in the freezer", "three days in an airtight tin", "a day or two, covered"],
    "cook_person": ["My grandmother", "A neighbour", "The cook at the village school", "An old friend"],
}
COOK_OPEN = [
    "To make {dish} for {serves} people you will need {ing_list}.",
    "{Cook_person} taught me that {dish} needs only a few things: {ing_list}.",
    "On a cold evening there is little better than {dish}, and it starts with {ing_list}.",
]
COOK_MID = [
    "The {i3} can be prepared the day before, which makes the whole thing quicker.",
    "If you are using the oven, heat it to {oven} degrees before you begin.",
    "Start by warming a little oil or butter in {pan} over {heat}.",
    "Add the {i1} and cook for {minutes} minutes, stirring now and then, until everything is {soft}.",
    "Stir in the {i2} next, slowly, because {tip_reason}.",
    "Keep the heat at {heat}; rushing this step is the most common mistake.",
    "Taste as you go and add salt a little at a time.",
    "A little of the {i4} added at the very end gives it a fresher taste.",
    "Leave it to rest for {rest} minutes before serving; the flavours settle as it cools slightly.",
]
COOK_CLOSE = [
    "Serve it with {serve_with}.",
    "Any leftovers will keep for {keeps}.",
    "It is even better the next day, served with {serve_with}.",
]


def cooking(rng: random.Random) -> str:
    dish, ings = rng.choice(DISHES)
    picked = rng.sample(ings, 4)
    ing_list = ", ".join(ings[:-1]) + " and " + ings[-1]
    return paragraph(rng, COOKING, COOK_OPEN, COOK_MID, COOK_CLOSE, keep_order=True, dish=dish, ing_list=ing_list,
                     rest=rng.choice([5, 10, 15]),
                     serves=rng.randint(2, 8), i1=picked[0], i2=picked[1], i3=picked[2], i4=picked[3])


# --- travel -----------------------------------------------------------------------------------

TRAVEL = {
    **COMMON,
    "transport": ["slow coastal train", "overnight bus", "small ferry", "regional train", "borrowed bicycle"],
    "arrival": ["late in the afternoon", "just after dawn", "in the middle of a rainstorm", "on market day"],
    "lodging": ["a guesthouse above a bakery", "a narrow hotel by the canal", "a farmhouse on the edge of town",
                "a hostel in an old school building"],
    "sight": ["the covered market", "the old stone bridge", "a small museum of clocks", "the lighthouse",
              "the botanical garden", "the cathedral tower", "the harbour walls", "a ruined windmill"],
    "sight_detail": ["which takes about an hour to walk around", "where the guide told stories about every corner",
                     "which is free to visit on Sundays", "from which you can see three valleys on a clear day"],
    "food": ["fish soup with thick bread", "pancakes with sour cherries", "a plate of grilled vegetables",
             "a pastry filled with spiced apple", "a bowl of noodles from a street stall"],
    "local": ["a retired teacher", "a fisherman mending his nets", "the woman who ran the bookshop",
              "a student working at the station café"],
    "advice": ["to visit the hills before the summer crowds arrive", "to take the early boat to the islands",
               "to avoid the main square at noon", "to try the bakery behind the church"],
    "mishap": ["missed the last bus and walked back along the river", "left a camera on a bench and found it the next morning",
               "took the wrong train and ended up in the next town", "got lost in the old quarter for an hour"],
    "feeling": ["rested", "curious to come back", "pleasantly tired", "full of plans for a longer visit"],
    "cost": _num(25, 140),
    "hours": _num(2, 11),
}
TRAVEL_OPEN = [
    "We reached {town} {arrival} after {hours} hours on the {transport}.",
    "{First} had been to {town} twice before, but this time we arrived by {transport}.",
    "The journey to {town} is not fast, but the {transport} follows the river for most of the way.",
]
TRAVEL_MID = [
    "We stayed in {lodging}, which cost {cost} euros a night including breakfast.",
    "The first thing we visited was {sight}, {sight_detail}.",
    "On the second day we walked out to {sight2}.",
    "Lunch was {food}, eaten on a bench overlooking the water.",
    "We got talking to {local}, who advised us {advice}.",
    "On the last evening we {mishap}.",
    "Most shops close for two hours in the afternoon, so it is worth planning around that.",
    "Tickets for the boat can only be bought in cash at the harbour office.",
    "The town is small enough to cross on foot in twenty minutes.",
]
TRAVEL_CLOSE = [
    "We left feeling {feeling}.",
    "By the time the {transport} pulled away we were already {feeling}.",
    "It is the kind of place that rewards a slow visit.",
]


def travel(rng: random.Random) -> str:
    sights = rng.sample(TRAVEL["sight"], 2)
    return paragraph(rng, TRAVEL, TRAVEL_OPEN, TRAVEL_MID, TRAVEL_CLOSE, sight=sights[0], sight2=sights[1])


# --- invented local history -------------------------------------------------------------------

HISTORY = {
    **COMMON,
    "trade": ["weavers", "rope makers", "millers", "potters", "boat builders", "clockmakers", "brewers"],
    "founding": ["a ford where the drovers crossed the river", "a fishing settlement of a dozen huts",
                 "a crossroads inn on the old salt road", "a cluster of farms around a spring"],
    "event": ["a great fire destroyed most of the wooden houses", "the river changed its course after a flood",
              "a new bridge brought traders from the far side of the valley", "a poor harvest emptied the granaries",
              "a new toll road opened and the old ferry lost its trade"],
    "response": ["rebuilt the centre in stone", "dug a new channel to the mill", "founded a school for apprentices",
                 "set up a common fund for bad years", "opened a weekly market on the green"],
    "rivalry": ["a long quarrel over fishing rights", "a dispute about the tolls on the bridge",
                "competition for the right to hold the autumn fair"],
    "record": ["the parish ledgers", "a surviving diary", "letters kept in the town hall", "the minutes of the guild"],
    "legacy": ["the market still meets on the same day of the week", "several streets are named after the old trades",
               "the stone bridge is still in use", "the school building now houses the library"],
    "century": ["twelfth", "fourteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth"],
}
HIST_OPEN = [
    "According to local tradition, {town} began as {founding} some time in the {century} century.",
    "The story of {town} is, in many ways, the story of its {trade}.",
    "Few visitors to {town} realise how close it came to disappearing altogether in the year {year}.",
]
HIST_MID = [
    "In {year} {event}, and the townspeople {response}.",
    "The guild of {trade} grew powerful, and its members sat on the town council for generations.",
    "Relations with the neighbouring town of {town2} were strained by {rivalry}.",
    "Much of what we know comes from {record}, which survived by chance in a locked chest.",
    "A merchant named {first} {last} is remembered for paying for the first paved road.",
    "By {year2} the population had grown to about {pop} people.",
    "The town's fortunes rose and fell with the price of wool and the state of the roads.",
    "Historians still argue about whether the old charter was genuine or a later copy.",
]
HIST_CLOSE = [
    "Today {legacy}.",
    "The traces are still there for anyone who knows where to look: {legacy}.",
    "It is a reminder that small places have long histories too.",
]


def history(rng: random.Random) -> str:
    year = rng.randint(1450, 1860)
    return paragraph(rng, HISTORY, HIST_OPEN, HIST_MID, HIST_CLOSE, year=year, year2=year + rng.randint(20, 120),
                     pop=rng.randrange(800, 12000, 100), town2=_town(rng))


# --- science explanations -----------------------------------------------------------------------

SCIENCE = [
    ("Why is the sky blue?", [
        "Sunlight looks white, but it is a mixture of many colours, each with its own wavelength.",
        "When it passes through the air, the light meets molecules of nitrogen and oxygen that are far smaller than its wavelength.",
        "Such small particles scatter short wavelengths much more strongly than long ones, so blue light is sent off in every direction.",
        "Wherever you look away from the sun, some of that scattered blue light reaches your eyes.",
        "At sunset the light crosses far more air before it reaches you, most of the blue has been scattered away, and the reds and oranges remain.",
        "Violet light is scattered even more than blue, but the sun emits less of it and our eyes are less sensitive to it.",
    ]),
    ("How does a rainbow form?", [
        "A rainbow appears when sunlight shines on falling raindrops while the sun is behind you.",
        "Light entering a drop bends, reflects off the back of the drop and bends again on the way out.",
        "Because each colour bends by a slightly different amount, the white light is spread into a band of colours.",
        "Red light leaves the drops at an angle of about 42 degrees to the direction of the sunlight, and violet at about 40 degrees.",
        "Every observer sees a different set of drops, so no two people see exactly the same rainbow.",
        "A fainter second bow sometimes appears outside the first, with its colours in reverse order, from light that reflected twice inside the drops.",
    ]),
    ("What causes the seasons?", [
        "The Earth's axis is tilted by about 23.5 degrees relative to its path around the sun.",
        "For part of the year one hemisphere leans towards the sun and receives more direct sunlight for more hours each day.",
        "Direct light delivers more energy to each square metre of ground than light that arrives at a shallow angle.",
        "Six months later the same hemisphere leans away, the days shorten and the sunlight arrives at a lower angle.",
        "The distance between the Earth and the sun changes a little during the year, but that is not what causes the seasons.",
        "This is why summer in one hemisphere happens at the same time as winter in the other.",
    ]),
    ("Why does ice float?", [
        "Most substances are denser as solids than as liquids, but water is an exception.",
        "When water freezes, its molecules link into an open, regular pattern held together by hydrogen bonds.",
        "That pattern takes up about nine percent more space than the same molecules in liquid water.",
        "Because ice is less dense than the water around it, it floats with most of its volume below the surface.",
        "Lakes therefore freeze from the top down, and the ice layer insulates the water beneath it.",
        "Fish and other animals can survive the winter in the liquid water under the ice.",
    ]),
    ("How far away is the storm?", [
        "Lightning and thunder happen at the same moment, but they reach us at very different speeds.",
        "Light arrives almost instantly, while sound travels through air at roughly 340 metres per second.",
        "That means the sound of thunder takes about three seconds to cover one kilometre.",
        "If you count {secs} seconds between the flash and the thunder, the storm is roughly {km} kilometres away.",
        "If the gap between flash and thunder shrinks from one strike to the next, the storm is moving towards you.",
        "Thunder is rarely heard more than about fifteen kilometres from the lightning that caused it.",
    ]),
    ("How do plants make their food?", [
        "Green plants make sugar from carbon dioxide and water, using the energy of sunlight.",
        "The process, called photosynthesis, takes place mainly in the leaves, inside small structures called chloroplasts.",
        "Chlorophyll, the pigment that makes leaves green, absorbs red and blue light and reflects most of the green.",
        "Oxygen is released as a by-product, which is why forests and oceans full of algae matter so much to the air we breathe.",
        "The sugar is used for energy or built into starch and cellulose, the material of stems and wood.",
        "A leaf exchanges gases through tiny pores on its underside, which close on hot days to save water.",
    ]),
    ("Why do we have tides?", [
        "Tides are caused mainly by the moon's gravity pulling on the Earth and its oceans.",
        "The pull is slightly stronger on the side of the Earth facing the moon and slightly weaker on the far side.",
        "This difference stretches the oceans into two bulges, one towards the moon and one away from it.",
        "As the Earth turns, most coasts pass through both bulges, giving two high tides roughly every day.",
        "When the sun and moon line up, at new and full moon, their effects add together and produce larger spring tides.",
        "The shape of the coast and the sea floor can make the tidal range a few centimetres in one place and many metres in another.",
    ]),
    ("How does a refrigerator keep food cold?", [
        "A refrigerator does not make cold; it moves heat from the inside to the outside.",
        "A fluid called the refrigerant circulates in a closed loop of pipes.",
        "Inside the cabinet the refrigerant evaporates at low pressure, and evaporation absorbs heat from the air around it.",
        "A compressor then squeezes the vapour, which raises its pressure and temperature.",
        "In the coils at the back, the hot vapour gives off its heat to the room and condenses back into a liquid.",
        "That is why the back of a refrigerator feels warm, and why it works harder in a hot kitchen.",
    ]),
    ("Why does bread rise?", [
        "Bread rises because of yeast, a tiny single-celled fungus.",
        "When flour and water are mixed, enzymes break some of the starch into sugars that the yeast can feed on.",
        "The yeast turns those sugars into carbon dioxide and a little alcohol.",
        "Kneading develops gluten, a stretchy network of proteins that traps the gas in small bubbles.",
        "In the oven the bubbles expand, the yeast dies, and the structure sets into a light crumb.",
        "Dough rises faster in a warm room, but a slow rise in a cool place often gives a better flavour.",
    ]),
    ("Why do leaves change colour in autumn?", [
        "Leaves are green in summer because they are full of chlorophyll.",
        "As the days shorten and nights grow cooler, many trees stop making new chlorophyll.",
        "The green fades and reveals yellow and orange pigments that were in the leaf all along.",
        "Some trees also produce red pigments in autumn, especially after sunny days and cold nights.",
        "Meanwhile a layer of cells forms at the base of each leaf stalk, and eventually the leaf falls.",
        "Dropping its leaves helps a tree save water and avoid damage during the winter.",
    ]),
    ("How does sound travel?", [
        "Sound is a vibration passed from one particle to the next through a material.",
        "When a guitar string vibrates, it pushes and pulls on the air, making regions of higher and lower pressure.",
        "These pressure waves spread outwards and set our eardrums vibrating.",
        "Sound travels about four times faster in water than in air, and faster still in steel.",
        "In the vacuum of space there are no particles to carry the vibration, so there is no sound.",
        "The pitch of a sound depends on how many vibrations arrive each second, which we call its frequency.",
    ]),
    ("What is the water cycle?", [
        "Water on Earth moves in a continuous cycle powered by the sun.",
        "Heat evaporates water from oceans, lakes and soil, and plants release water vapour through their leaves.",
        "As the moist air rises it cools, and the vapour condenses into tiny droplets that form clouds.",
        "When the droplets join together and grow heavy enough, they fall as rain, snow or hail.",
        "Some of that water runs off into rivers, some soaks into the ground, and some is stored for years in ice and deep aquifers.",
        "The same water has been going round this cycle for billions of years.",
    ]),
]
SCIENCE_INTRO = [
    "{q} It is a question children often ask, and the answer is worth knowing.",
    "{q} The short answer is simpler than it sounds.",
    "{q} Here is an explanation in plain terms.",
]


def science(rng: random.Random) -> str:
    question, facts = rng.choice(SCIENCE)
    n = rng.randint(4, len(facts))
    chosen = sorted(rng.sample(range(len(facts)), n))  # keep the explanation's order
    secs = rng.choice([3, 6, 9, 12, 15])
    body = " ".join(facts[i].format(secs=secs, km=secs // 3) for i in chosen)
    return rng.choice(SCIENCE_INTRO).format(q=question) + " " + body


# --- gardening and home -----------------------------------------------------------------------

GARDEN = {
    **COMMON,
    "plant": ["runner beans", "tomatoes", "lettuce", "garlic", "potatoes", "sweet peas", "courgettes", "strawberries"],
    "task": ["cleared the old leaves from the beds", "mended the fence by the shed", "turned the compost heap",
             "cut back the brambles along the path", "sown a row of carrots", "tied the raspberry canes to the wires"],
    "pest": ["slugs", "aphids", "pigeons", "snails", "caterpillars"],
    "remedy": ["a ring of crushed eggshells", "a net stretched over hoops", "a nightly hunt with a torch and a bucket",
               "a bird feeder that brought the blackbirds in", "rows of marigolds between the beds"],
    "harvest": ["picked the first of the {plant}", "more {plant} than we could eat", "a small but perfect crop of {plant}",
                "enough {plant} to share with the whole street"],
    "harvest_month": ["June", "July", "August", "September"],
    "neighbour_act": ["passed a bag of seedlings over the wall", "lent us a wheelbarrow", "shared a tip about watering at dusk",
                      "swapped some rhubarb for a jar of jam"],
    "weeks": _num(2, 10),
    "plant2": ["beetroot", "leeks", "pumpkins", "broad beans", "raspberries", "chard"],
}
GARDEN_OPEN = [
    "This year {first} finally took on the allotment at the end of {last} Lane.",
    "Spring in the garden always starts with the same job: someone has {task}.",
    "Growing {plant} is easier than most people think, as long as you are patient.",
]
GARDEN_MID = [
    "Over the weekend we {task2}.",
    "The {plant} went in about {weeks} weeks later than planned because of the cold nights.",
    "The biggest problem was {pest}, which we kept under control with {remedy}.",
    "Watering in the evening means less is lost to the sun.",
    "A neighbour {neighbour_act}.",
    "By {harvest_month} we had {harvest}.",
    "It helps to keep a notebook of what was planted where, since memory is not reliable by the autumn.",
    "Rotating crops from one bed to another each year keeps the soil healthier.",
]
GARDEN_CLOSE = [
    "Next year the plan is to try {plant2} as well.",
    "There is always something to learn, and always another season to try again.",
    "None of it is complicated; it just takes time.",
]


def gardening(rng: random.Random) -> str:
    tasks = rng.sample(GARDEN["task"], 2)
    plant = rng.choice(GARDEN["plant"])
    return paragraph(rng, GARDEN, GARDEN_OPEN, GARDEN_MID, GARDEN_CLOSE, task=tasks[0], plant=plant,
                     task2=tasks[1].replace("sown", "sowed"), harvest=rng.choice(GARDEN["harvest"]).format(plant=plant))


# --- community life ---------------------------------------------------------------------------

COMMUNITY = {
    **COMMON,
    "event": ["summer fair", "library book sale", "charity fun run", "harvest supper", "street market",
              "repair café", "choir concert", "river clean-up"],
    "venue": ["the village hall", "the park by the river", "the school playground", "the old corn exchange"],
    "volunteer": ["a group of teenagers", "the retired postman", "three families from the new estate", "the football club"],
    "activity": ["a tombola", "a cake stall", "a tug of war", "a second-hand book table", "face painting",
                 "a quiz about the town's history", "a stall fixing bicycles for free"],
    "raised": lambda rng: str(rng.randrange(300, 5000, 10)),
    "cause": ["a new roof for the scout hut", "the school library", "benches along the river path",
              "the food bank", "repairing the church clock"],
    "hiccup": ["the sound system failed halfway through", "a sudden shower sent everyone under the awnings",
               "the raffle tickets ran out by eleven", "the main road was closed for repairs that morning"],
    "visitors": lambda rng: str(rng.randrange(150, 2000, 10)),
}
COMM_OPEN = [
    "The {event} at {venue} drew about {visitors} people this year, the largest crowd anyone can remember.",
    "Preparations for the {event} began months ago, when {volunteer} offered to help.",
    "{Day}'s {event} in {town} showed what a small community can do when it pulls together.",
]
COMM_MID = [
    "There was {activity} and {activity2}.",
    "Much of the work was done by {volunteer}.",
    "Not everything went to plan: {hiccup}.",
    "The organiser, {first} {last}, thanked everyone who had baked, lifted and carried.",
    "Parking was tight, so many people walked or came by bicycle.",
    "Local businesses donated prizes, from a haircut to a hamper of cheese.",
    "The afternoon ended with music from the town band.",
]
COMM_CLOSE = [
    "In total the day raised {raised} euros for {cause}.",
    "The money raised, {raised} euros in all, will go towards {cause}.",
    "Plans for next year are already under way.",
]


def community(rng: random.Random) -> str:
    acts = rng.sample(COMMUNITY["activity"], 2)
    return paragraph(rng, COMMUNITY, COMM_OPEN, COMM_MID, COMM_CLOSE, activity=acts[0], activity2=acts[1])


TOPICS = (weather, cooking, travel, history, science, gardening, community)


def part(rng: random.Random) -> str:
    return rng.choice(TOPICS)(rng)


def texts(seed: int = SEED) -> list[str]:
    return build_samples(random.Random(seed), part)


def generate(out_dir: Path = ROOT / NAME, seed: int = SEED) -> Path:
    """Write ``out_dir/calibration.jsonl`` from ``seed``; the shipped file is ``generate()``."""
    return write_set(out_dir, texts(seed))


if __name__ == "__main__":
    main(__doc__, NAME, generate, SEED)
