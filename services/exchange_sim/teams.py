"""Sports leagues the simulator lists: Kalshi series, Odds API sport keys, real team codes and names.

Team codes are the ones Kalshi uses in tickers (2-4 characters, some with ``-``
such as NCAAF ``M-OH``); names are what sportsbooks print, so the Odds API side
of the simulator can be joined to Kalshi markets by name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimLeague:
    series: str  # Kalshi game-winner series ticker
    title: str  # series title
    sport_key: str  # The Odds API v4 sport key
    sport_title: str
    tag: str  # Kalshi series tag
    soccer: bool  # three-way (home/away/tie), home team listed first
    with_time: bool  # MLB tickers carry a 4-digit start time
    teams: tuple[tuple[str, str], ...]  # (code, full name)


def _teams(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for line in text.strip().splitlines():
        code, _, name = line.strip().partition(" ")
        out.append((code, name.strip()))
    return tuple(out)


NFL = _teams("""
ARI Arizona Cardinals
ATL Atlanta Falcons
BAL Baltimore Ravens
BUF Buffalo Bills
CAR Carolina Panthers
CHI Chicago Bears
CIN Cincinnati Bengals
CLE Cleveland Browns
DAL Dallas Cowboys
DEN Denver Broncos
DET Detroit Lions
GB Green Bay Packers
HOU Houston Texans
IND Indianapolis Colts
JAC Jacksonville Jaguars
KC Kansas City Chiefs
LV Las Vegas Raiders
LAC Los Angeles Chargers
LA Los Angeles Rams
MIA Miami Dolphins
MIN Minnesota Vikings
NE New England Patriots
NO New Orleans Saints
NYG New York Giants
NYJ New York Jets
PHI Philadelphia Eagles
PIT Pittsburgh Steelers
SF San Francisco 49ers
SEA Seattle Seahawks
TB Tampa Bay Buccaneers
TEN Tennessee Titans
WAS Washington Commanders
""")

NBA = _teams("""
ATL Atlanta Hawks
BOS Boston Celtics
BKN Brooklyn Nets
CHA Charlotte Hornets
CHI Chicago Bulls
CLE Cleveland Cavaliers
DAL Dallas Mavericks
DEN Denver Nuggets
DET Detroit Pistons
GSW Golden State Warriors
HOU Houston Rockets
IND Indiana Pacers
LAC Los Angeles Clippers
LAL Los Angeles Lakers
MEM Memphis Grizzlies
MIA Miami Heat
MIL Milwaukee Bucks
MIN Minnesota Timberwolves
NOP New Orleans Pelicans
NYK New York Knicks
OKC Oklahoma City Thunder
ORL Orlando Magic
PHI Philadelphia 76ers
PHX Phoenix Suns
POR Portland Trail Blazers
SAC Sacramento Kings
SAS San Antonio Spurs
TOR Toronto Raptors
UTA Utah Jazz
WAS Washington Wizards
""")

MLB = _teams("""
ARI Arizona Diamondbacks
ATL Atlanta Braves
BAL Baltimore Orioles
BOS Boston Red Sox
CHC Chicago Cubs
CWS Chicago White Sox
CIN Cincinnati Reds
CLE Cleveland Guardians
COL Colorado Rockies
DET Detroit Tigers
HOU Houston Astros
KC Kansas City Royals
LAA Los Angeles Angels
LAD Los Angeles Dodgers
MIA Miami Marlins
MIL Milwaukee Brewers
MIN Minnesota Twins
NYM New York Mets
NYY New York Yankees
ATH Athletics
PHI Philadelphia Phillies
PIT Pittsburgh Pirates
SD San Diego Padres
SF San Francisco Giants
SEA Seattle Mariners
STL St. Louis Cardinals
TB Tampa Bay Rays
TEX Texas Rangers
TOR Toronto Blue Jays
WSH Washington Nationals
""")

NHL = _teams("""
ANA Anaheim Ducks
BOS Boston Bruins
BUF Buffalo Sabres
CGY Calgary Flames
CAR Carolina Hurricanes
CHI Chicago Blackhawks
COL Colorado Avalanche
CBJ Columbus Blue Jackets
DAL Dallas Stars
DET Detroit Red Wings
EDM Edmonton Oilers
FLA Florida Panthers
LA Los Angeles Kings
MIN Minnesota Wild
MTL Montreal Canadiens
NSH Nashville Predators
NJ New Jersey Devils
NYI New York Islanders
NYR New York Rangers
OTT Ottawa Senators
PHI Philadelphia Flyers
PIT Pittsburgh Penguins
SJ San Jose Sharks
SEA Seattle Kraken
STL St Louis Blues
TB Tampa Bay Lightning
TOR Toronto Maple Leafs
UTA Utah Mammoth
VAN Vancouver Canucks
VGK Vegas Golden Knights
WSH Washington Capitals
WPG Winnipeg Jets
""")

NCAAF = _teams("""
ALA Alabama Crimson Tide
UGA Georgia Bulldogs
LSU LSU Tigers
MISS Ole Miss Rebels
OSU Ohio State Buckeyes
MICH Michigan Wolverines
TEX Texas Longhorns
OU Oklahoma Sooners
ND Notre Dame Fighting Irish
PSU Penn State Nittany Lions
ORE Oregon Ducks
USC USC Trojans
CLEM Clemson Tigers
FSU Florida State Seminoles
M-OH Miami (OH) RedHawks
BALL Ball State Cardinals
""")

NCAAMB = _teams("""
DUKE Duke Blue Devils
UNC North Carolina Tar Heels
KU Kansas Jayhawks
UK Kentucky Wildcats
WIS Wisconsin Badgers
MICH Michigan Wolverines
GONZ Gonzaga Bulldogs
PUR Purdue Boilermakers
HOU Houston Cougars
ARIZ Arizona Wildcats
UCLA UCLA Bruins
CONN UConn Huskies
""")

EPL = _teams("""
ARS Arsenal
AVL Aston Villa
BOU Bournemouth
BRE Brentford
BHA Brighton and Hove Albion
CHE Chelsea
CRY Crystal Palace
EVE Everton
FUL Fulham
LIV Liverpool
MCI Manchester City
MUN Manchester United
NEW Newcastle United
NFO Nottingham Forest
TOT Tottenham Hotspur
WHU West Ham United
""")

WNBA = _teams("""
ATL Atlanta Dream
CHI Chicago Sky
CON Connecticut Sun
DAL Dallas Wings
IND Indiana Fever
LV Las Vegas Aces
LA Los Angeles Sparks
MIN Minnesota Lynx
NY New York Liberty
PHX Phoenix Mercury
SEA Seattle Storm
WSH Washington Mystics
TOR Toronto Tempo
GS Golden State Valkyries
""")

LEAGUES: tuple[SimLeague, ...] = (
    SimLeague("KXNFLGAME", "Pro Football Game", "americanfootball_nfl", "NFL", "Football", False, False, NFL),
    SimLeague("KXNBAGAME", "Pro Basketball Game", "basketball_nba", "NBA", "Basketball", False, False, NBA),
    SimLeague("KXNHLGAME", "Pro Hockey Game", "icehockey_nhl", "NHL", "Hockey", False, False, NHL),
    SimLeague("KXEPLGAME", "English Premier League Game", "soccer_epl", "EPL", "Soccer", True, False, EPL),
    SimLeague(
        "KXNCAAFGAME",
        "College Football Game",
        "americanfootball_ncaaf",
        "NCAAF",
        "Football",
        False,
        False,
        NCAAF,
    ),
    SimLeague("KXMLBGAME", "Pro Baseball Game", "baseball_mlb", "MLB", "Baseball", False, True, MLB),
    SimLeague(
        "KXNCAAMBGAME",
        "Men's College Basketball Game",
        "basketball_ncaab",
        "NCAAB",
        "Basketball",
        False,
        False,
        NCAAMB,
    ),
    SimLeague(
        "KXWNBAGAME",
        "Pro Women's Basketball Game",
        "basketball_wnba",
        "WNBA",
        "Basketball",
        False,
        False,
        WNBA,
    ),
)

LEAGUE_BY_SERIES = {lg.series: lg for lg in LEAGUES}
LEAGUE_BY_SPORT = {lg.sport_key: lg for lg in LEAGUES}
