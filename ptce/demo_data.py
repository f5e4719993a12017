"""Demo data of one pole: the Pôle Coopératif du Val de Loire (démo).

Fifteen members around Tours (Indre-et-Loire) and the forty offers they pool: premises,
equipment, staff time and services. Plain literals for the demo seeding.

Communes are real, with their INSEE commune codes (code officiel géographique, not postal
codes). The organisations (but for the commune of Ballan-Miré), street addresses and SIRET
numbers are made up; every SIRET passes the Luhn check on its SIREN and on all 14 digits.
Amounts are decimal strings in euros per unit of the offer: ``internal_price`` is what
members pay, ``reference_value`` the market value used to value the in-kind part.
"""

from __future__ import annotations

POLE: dict[str, str] = {
    "name": "Pôle Coopératif du Val de Loire (démo)",
    "territory": "Tours Métropole Val de Loire et Touraine-Est (Indre-et-Loire)",
    "time_zone": "Europe/Paris",
    "currency": "EUR",
}

COORDINATOR_KEY = "scic_pole"
DEMO_MEMBER_KEY = "ressourcerie"

MEMBERS: list[dict[str, object]] = [
    {
        "key": "scic_pole",
        "legal_name": "SCIC Val de Loire Coopération",
        "siret": "87117974300012",
        "category": "cooperative",
        "is_ess": True,
        "headcount": 6,
        "annual_turnover": "385000.00",
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2021-03-15",
    },
    {
        "key": "ressourcerie",
        "legal_name": "La Ressourcerie du Cher",
        "siret": "54093290200013",
        "category": "association",
        "is_ess": True,
        "headcount": 14,
        "annual_turnover": "612000.00",
        "street": "20 rue des Grands Mortiers",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "joined_on": "2021-03-15",
    },
    {
        "key": "groupement_employeurs",
        "legal_name": "Groupement d'employeurs Touraine Solidaire",
        "siret": "48099224700019",
        "category": "association",
        "is_ess": True,
        "headcount": 11,
        "annual_turnover": "498000.00",
        "street": "5 avenue Marcel Dassault",
        "postal_code": "37200",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2021-06-01",
    },
    {
        "key": "atelier_velo",
        "legal_name": "Atelier vélo Roue Libre",
        "siret": "73920388300015",
        "category": "association",
        "is_ess": True,
        "headcount": 4,
        "annual_turnover": "176000.00",
        "street": "8 rue de la Fuye",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2021-09-20",
    },
    {
        "key": "cuisines_solidaires",
        "legal_name": "Les Cuisines Solidaires de Touraine",
        "siret": "88040751500019",
        "category": "work_integration",
        "is_ess": True,
        "headcount": 32,
        "annual_turnover": "1240000.00",
        "street": "14 rue de Chantepie",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "joined_on": "2022-01-10",
    },
    {
        "key": "scop_numerique",
        "legal_name": "Coop'Numérique Touraine SCOP SARL",
        "siret": "98745024400015",
        "category": "cooperative",
        "is_ess": True,
        "headcount": 9,
        "annual_turnover": "720000.00",
        "street": "27 avenue de l'Europe",
        "postal_code": "37100",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2022-04-04",
    },
    {
        "key": "mutuelle",
        "legal_name": "Mutuelle Solidaire du Val de Loire",
        "siret": "74585499200013",
        "category": "mutual",
        "is_ess": True,
        "headcount": 48,
        "annual_turnover": "9800000.00",
        "street": "41 boulevard Béranger",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2022-06-13",
    },
    {
        "key": "menuiserie",
        "legal_name": "Menuiserie Bois et Loire SARL",
        "siret": "88860757900016",
        "category": "company",
        "is_ess": False,
        "headcount": 12,
        "annual_turnover": "1350000.00",
        "street": "3 rue de la Papoterie",
        "postal_code": "37170",
        "commune": "Chambray-lès-Tours",
        "insee_code": "37050",
        "joined_on": "2022-09-05",
    },
    {
        "key": "transports",
        "legal_name": "Transports Légers Ligériens SAS",
        "siret": "97855648800010",
        "category": "company",
        "is_ess": False,
        "headcount": 7,
        "annual_turnover": "890000.00",
        "street": "62 avenue Jacques Duclos",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "joined_on": "2023-02-01",
    },
    {
        "key": "studio_graphique",
        "legal_name": "Studio Graphique Loire Com SARL",
        "siret": "89252135200013",
        "category": "company",
        "is_ess": False,
        "headcount": 3,
        "annual_turnover": "210000.00",
        "street": "19 rue Colbert",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2023-05-22",
    },
    {
        "key": "commune_ballan",
        "legal_name": "Commune de Ballan-Miré",
        "siret": "21370018000010",
        "category": "local_authority",
        "is_ess": False,
        "headcount": 95,
        "annual_turnover": "9600000.00",
        "street": "1 place du 11 Novembre",
        "postal_code": "37510",
        "commune": "Ballan-Miré",
        "insee_code": "37018",
        "joined_on": "2023-10-02",
    },
    {
        "key": "formation",
        "legal_name": "Institut de Formation Solidaire de Touraine",
        "siret": "58263751800017",
        "category": "training_body",
        "is_ess": True,
        "headcount": 18,
        "annual_turnover": "1450000.00",
        "street": "9 rue Gamard",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "joined_on": "2024-01-15",
    },
    {
        "key": "labo_universite",
        "legal_name": "Laboratoire Territoires et Coopérations, Université de Tours",
        "siret": "19268491800019",
        "category": "research_higher_education",
        "is_ess": False,
        "headcount": 24,
        "annual_turnover": "1100000.00",
        "street": "60 avenue Monge",
        "postal_code": "37200",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2024-06-03",
    },
    {
        "key": "tiers_lieu",
        "legal_name": "Tiers-lieu de l'Île d'Or",
        "siret": "85666202800013",
        "category": "association",
        "is_ess": True,
        "headcount": 5,
        "annual_turnover": "240000.00",
        "street": "4 allée de l'Île d'Or",
        "postal_code": "37400",
        "commune": "Amboise",
        "insee_code": "37003",
        "joined_on": "2025-01-20",
    },
    {
        "key": "energie_citoyenne",
        "legal_name": "Énergies Citoyennes de Touraine SAS",
        "siret": "97567849100013",
        "category": "other_ess",
        "is_ess": True,
        "headcount": 4,
        "annual_turnover": "530000.00",
        "street": "2 rue du Port",
        "postal_code": "37230",
        "commune": "Luynes",
        "insee_code": "37139",
        "joined_on": "2025-09-08",
    },
]

OFFERS: list[dict[str, object]] = [
    {
        "owner": "scic_pole",
        "kind": "premises",
        "title": "Salle de réunion Loire",
        "description": (
            "Salle de réunion lumineuse au premier étage de la maison de la "
            "coopération, à cinq minutes à pied de la gare de Tours. Tables "
            "modulables en U ou en îlots, écran mural et visioconférence. Café "
            "et thé en libre-service pour les membres du pôle."
        ),
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "80.00",
        "reference_value": "200.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "18:30"},
                {"weekday": 1, "opens": "08:30", "closes": "18:30"},
                {"weekday": 2, "opens": "08:30", "closes": "18:30"},
                {"weekday": 3, "opens": "08:30", "closes": "18:30"},
                {"weekday": 4, "opens": "08:30", "closes": "18:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 1440,
            "min_notice_hours": 24,
        },
        "premises": {
            "surface_m2": 38,
            "seats": 14,
            "accessible": True,
            "amenities": [
                "vidéoprojecteur",
                "écran mural",
                "visioconférence",
                "paperboard",
                "wifi",
            ],
        },
    },
    {
        "owner": "mutuelle",
        "kind": "premises",
        "title": "Salles de réunions du siège de la mutuelle",
        "description": (
            "Deux salles de réunions identiques au rez-de-chaussée du siège, "
            "boulevard Béranger. Chacune accueille douze personnes autour d'une "
            "grande table. Réservation par demi-journée, validée par l'accueil "
            "de la mutuelle sous deux jours ouvrés."
        ),
        "street": "41 boulevard Béranger",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "half_day",
        "capacity": 2,
        "booking_mode": "approval",
        "internal_price": "40.00",
        "reference_value": "110.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:30"},
                {"weekday": 1, "opens": "09:00", "closes": "17:30"},
                {"weekday": 2, "opens": "09:00", "closes": "17:30"},
                {"weekday": 3, "opens": "09:00", "closes": "17:30"},
                {"weekday": 4, "opens": "09:00", "closes": "17:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-05-14",
                    "end_date": "2026-05-15",
                    "reason": "Pont de l'Ascension",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 480,
            "min_notice_hours": 48,
        },
        "premises": {
            "surface_m2": 30,
            "seats": 12,
            "accessible": True,
            "amenities": ["écran", "paperboard", "wifi", "climatisation"],
        },
    },
    {
        "owner": "commune_ballan",
        "kind": "premises",
        "title": "Grande salle polyvalente",
        "description": (
            "Grande salle polyvalente municipale avec scène, office traiteur et "
            "parking de 80 places. Adaptée aux assemblées générales, forums, "
            "repas associatifs et spectacles. Tarif préférentiel pour les "
            "membres du pôle ; mise en place et rangement par l'organisateur."
        ),
        "street": "1 place du 11 Novembre",
        "postal_code": "37510",
        "commune": "Ballan-Miré",
        "insee_code": "37018",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "150.00",
        "reference_value": "600.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:00", "closes": "23:30"},
                {"weekday": 1, "opens": "08:00", "closes": "23:30"},
                {"weekday": 2, "opens": "08:00", "closes": "23:30"},
                {"weekday": 3, "opens": "08:00", "closes": "23:30"},
                {"weekday": 4, "opens": "08:00", "closes": "23:30"},
                {"weekday": 5, "opens": "08:00", "closes": "23:30"},
                {"weekday": 6, "opens": "08:00", "closes": "23:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 480,
            "max_booking_minutes": 2880,
            "min_notice_hours": 336,
        },
        "premises": {
            "surface_m2": 320,
            "seats": 220,
            "accessible": True,
            "amenities": [
                "scène",
                "sonorisation",
                "office traiteur",
                "tables et chaises",
                "parking",
            ],
        },
    },
    {
        "owner": "tiers_lieu",
        "kind": "premises",
        "title": "Espace de coworking",
        "description": (
            "Trois postes de coworking dans l'ancienne capitainerie du "
            "tiers-lieu, face à la Loire. Bureaux, fauteuils ergonomiques, "
            "imprimante partagée et cuisine commune. Idéal pour les salariés des "
            "membres en déplacement à Amboise."
        ),
        "street": "4 allée de l'Île d'Or",
        "postal_code": "37400",
        "commune": "Amboise",
        "insee_code": "37003",
        "unit": "day",
        "capacity": 3,
        "booking_mode": "instant",
        "internal_price": "8.00",
        "reference_value": "20.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "19:00"},
                {"weekday": 1, "opens": "08:30", "closes": "19:00"},
                {"weekday": 2, "opens": "08:30", "closes": "19:00"},
                {"weekday": 3, "opens": "08:30", "closes": "19:00"},
                {"weekday": 4, "opens": "08:30", "closes": "19:00"},
                {"weekday": 5, "opens": "08:30", "closes": "19:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 7200,
            "min_notice_hours": 0,
        },
        "premises": {
            "surface_m2": 45,
            "seats": 3,
            "accessible": True,
            "amenities": ["wifi", "imprimante", "cuisine", "casiers"],
        },
    },
    {
        "owner": "scic_pole",
        "kind": "premises",
        "title": "Bureau partagé",
        "description": (
            "Bureau fermé de deux postes à la maison de la coopération, pour un "
            "entretien, un rendez-vous confidentiel ou une journée de travail au "
            "calme. Accès au photocopieur et à la salle de pause."
        ),
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "15.00",
        "reference_value": "35.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "18:30"},
                {"weekday": 1, "opens": "08:30", "closes": "18:30"},
                {"weekday": 2, "opens": "08:30", "closes": "18:30"},
                {"weekday": 3, "opens": "08:30", "closes": "18:30"},
                {"weekday": 4, "opens": "08:30", "closes": "18:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 120,
            "max_booking_minutes": 2400,
            "min_notice_hours": 2,
        },
        "premises": {
            "surface_m2": 14,
            "seats": 2,
            "accessible": True,
            "amenities": ["wifi", "photocopieur", "téléphone"],
        },
    },
    {
        "owner": "atelier_velo",
        "kind": "premises",
        "title": "Atelier de réparation",
        "description": (
            "Atelier de réparation de cycles équipé de quatre pieds d'atelier, "
            "d'un établi complet et d'un stock de pièces de réemploi. Mis à "
            "disposition des membres pour des ateliers d'autoréparation avec "
            "leurs salariés ou leurs publics."
        ),
        "street": "8 rue de la Fuye",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "20.00",
        "reference_value": "60.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 1, "opens": "09:30", "closes": "18:00"},
                {"weekday": 2, "opens": "09:30", "closes": "18:00"},
                {"weekday": 3, "opens": "09:30", "closes": "18:00"},
                {"weekday": 4, "opens": "09:30", "closes": "18:00"},
                {"weekday": 5, "opens": "09:30", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 180,
            "max_booking_minutes": 480,
            "min_notice_hours": 72,
        },
        "premises": {
            "surface_m2": 65,
            "seats": 8,
            "accessible": True,
            "amenities": ["pieds d'atelier", "établi", "outillage vélo", "compresseur"],
        },
    },
    {
        "owner": "menuiserie",
        "kind": "premises",
        "title": "Atelier de menuiserie équipé",
        "description": (
            "Atelier de menuiserie avec machines stationnaires (scie à format, "
            "dégauchisseuse, raboteuse) et aspiration centralisée. Accessible le "
            "samedi aux porteurs de projets du pôle, après une demi-journée "
            "d'habilitation avec un compagnon."
        ),
        "street": "3 rue de la Papoterie",
        "postal_code": "37170",
        "commune": "Chambray-lès-Tours",
        "insee_code": "37050",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "90.00",
        "reference_value": "250.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [{"weekday": 5, "opens": "08:00", "closes": "17:00"}],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": 480,
            "max_booking_minutes": 480,
            "min_notice_hours": 168,
        },
        "premises": {
            "surface_m2": 180,
            "seats": 6,
            "accessible": False,
            "amenities": ["machines stationnaires", "aspiration", "vestiaire"],
        },
    },
    {
        "owner": "cuisines_solidaires",
        "kind": "premises",
        "title": "Cuisine professionnelle partagée",
        "description": (
            "Laboratoire de cuisine aux normes HACCP : piano six feux, four "
            "mixte, cellule de refroidissement et chambre froide. Ouvert aux "
            "membres l'après-midi et le week-end, hors production de "
            "l'entreprise d'insertion. Nettoyage compris."
        ),
        "street": "14 rue de Chantepie",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "60.00",
        "reference_value": "175.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "14:00", "closes": "20:00"},
                {"weekday": 1, "opens": "14:00", "closes": "20:00"},
                {"weekday": 2, "opens": "14:00", "closes": "20:00"},
                {"weekday": 3, "opens": "14:00", "closes": "20:00"},
                {"weekday": 4, "opens": "14:00", "closes": "20:00"},
                {"weekday": 5, "opens": "08:00", "closes": "20:00"},
                {"weekday": 6, "opens": "08:00", "closes": "20:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 720,
            "min_notice_hours": 72,
        },
        "premises": {
            "surface_m2": 95,
            "seats": 6,
            "accessible": True,
            "amenities": ["cuisine professionnelle", "chambre froide", "plonge"],
        },
    },
    {
        "owner": "ressourcerie",
        "kind": "premises",
        "title": "Box de stockage sécurisé",
        "description": (
            "Quatre box de stockage de 10 m² dans l'entrepôt de la ressourcerie, "
            "accessibles aux heures d'ouverture. Pour le matériel d'événements, "
            "les archives ou les stocks saisonniers des membres. Réservation à "
            "la journée, sans durée maximale."
        ),
        "street": "20 rue des Grands Mortiers",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "day",
        "capacity": 4,
        "booking_mode": "instant",
        "internal_price": "2.00",
        "reference_value": "6.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
                {"weekday": 5, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 24,
        },
        "premises": {
            "surface_m2": 10,
            "seats": 1,
            "accessible": True,
            "amenities": ["quai de chargement", "transpalette", "vidéosurveillance"],
        },
    },
    {
        "owner": "formation",
        "kind": "premises",
        "title": "Salle de formation informatique",
        "description": (
            "Salle de formation de douze postes sous Linux et Windows, avec "
            "tableau blanc interactif. Les sessions des membres sont planifiées "
            "avec le service formation, qui valide la demande selon le "
            "calendrier des stages."
        ),
        "street": "9 rue Gamard",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "100.00",
        "reference_value": "280.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "17:30"},
                {"weekday": 1, "opens": "08:30", "closes": "17:30"},
                {"weekday": 2, "opens": "08:30", "closes": "17:30"},
                {"weekday": 3, "opens": "08:30", "closes": "17:30"},
                {"weekday": 4, "opens": "08:30", "closes": "17:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 2400,
            "min_notice_hours": 72,
        },
        "premises": {
            "surface_m2": 60,
            "seats": 12,
            "accessible": True,
            "amenities": ["ordinateurs", "tableau blanc interactif", "vidéoprojecteur", "wifi"],
        },
    },
    {
        "owner": "labo_universite",
        "kind": "premises",
        "title": "Salle de conférence de 80 places",
        "description": (
            "Salle de conférence du laboratoire sur le site Grandmont, prêtée "
            "gracieusement pour les séminaires et restitutions du pôle. Régie "
            "son et vidéo, captation possible. Prêt à titre gratuit, valorisé à "
            "la valeur locative de marché."
        ),
        "street": "60 avenue Monge",
        "postal_code": "37200",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "0.00",
        "reference_value": "300.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:00", "closes": "19:00"},
                {"weekday": 1, "opens": "08:00", "closes": "19:00"},
                {"weekday": 2, "opens": "08:00", "closes": "19:00"},
                {"weekday": 3, "opens": "08:00", "closes": "19:00"},
                {"weekday": 4, "opens": "08:00", "closes": "19:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 480,
            "min_notice_hours": 168,
        },
        "premises": {
            "surface_m2": 140,
            "seats": 80,
            "accessible": True,
            "amenities": ["sonorisation", "vidéoprojecteur", "captation vidéo", "wifi"],
        },
    },
    {
        "owner": "tiers_lieu",
        "kind": "premises",
        "title": "Salle de réunion de l'Île d'Or",
        "description": (
            "Petite salle de réunion vitrée du tiers-lieu, pour huit personnes. "
            "Réservable à l'heure, en libre-service avec le code d'accès envoyé "
            "à la confirmation."
        ),
        "street": "4 allée de l'Île d'Or",
        "postal_code": "37400",
        "commune": "Amboise",
        "insee_code": "37003",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "10.00",
        "reference_value": "25.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "21:00"},
                {"weekday": 1, "opens": "08:30", "closes": "21:00"},
                {"weekday": 2, "opens": "08:30", "closes": "21:00"},
                {"weekday": 3, "opens": "08:30", "closes": "21:00"},
                {"weekday": 4, "opens": "08:30", "closes": "21:00"},
                {"weekday": 5, "opens": "08:30", "closes": "21:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 600,
            "min_notice_hours": 1,
        },
        "premises": {
            "surface_m2": 22,
            "seats": 8,
            "accessible": True,
            "amenities": ["écran", "paperboard", "wifi"],
        },
    },
    {
        "owner": "cuisines_solidaires",
        "kind": "equipment",
        "title": "Camion frigorifique",
        "description": (
            "Camion frigorifique de 20 m³ (permis B, 3,5 t) avec groupe froid "
            "positif et négatif. Pour les livraisons de denrées, les collectes "
            "de dons alimentaires et les événements. Restitution nettoyée, plein "
            "fait."
        ),
        "street": "14 rue de Chantepie",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "60.00",
        "reference_value": "150.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "07:00", "closes": "20:00"},
                {"weekday": 1, "opens": "07:00", "closes": "20:00"},
                {"weekday": 2, "opens": "07:00", "closes": "20:00"},
                {"weekday": 3, "opens": "07:00", "closes": "20:00"},
                {"weekday": 4, "opens": "07:00", "closes": "20:00"},
                {"weekday": 5, "opens": "07:00", "closes": "20:00"},
                {"weekday": 6, "opens": "07:00", "closes": "20:00"},
            ],
            "closures": [],
            "min_booking_minutes": 240,
            "max_booking_minutes": 4320,
            "min_notice_hours": 48,
        },
        "equipment": {
            "category": "véhicule frigorifique",
            "condition": "good",
            "can_leave_premises": True,
        },
    },
    {
        "owner": "scic_pole",
        "kind": "equipment",
        "title": "Vidéoprojecteur",
        "description": (
            "Vidéoprojecteur portable Full HD avec écran sur trépied, câbles "
            "HDMI et adaptateurs. À retirer et à rapporter à l'accueil de la "
            "maison de la coopération."
        ),
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "5.00",
        "reference_value": "25.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": 4320,
            "min_notice_hours": 4,
        },
        "equipment": {"category": "audiovisuel", "condition": "good", "can_leave_premises": True},
    },
    {
        "owner": "atelier_velo",
        "kind": "equipment",
        "title": "Vélos cargos",
        "description": (
            "Trois vélos cargos à assistance électrique (biporteurs, 100 kg de "
            "charge) pour les livraisons en ville, les déménagements de matériel "
            "ou les animations. Casques, cadenas et prise en main de quinze "
            "minutes inclus."
        ),
        "street": "8 rue de la Fuye",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 3,
        "booking_mode": "instant",
        "internal_price": "10.00",
        "reference_value": "45.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 1, "opens": "09:30", "closes": "18:00"},
                {"weekday": 2, "opens": "09:30", "closes": "18:00"},
                {"weekday": 3, "opens": "09:30", "closes": "18:00"},
                {"weekday": 4, "opens": "09:30", "closes": "18:00"},
                {"weekday": 5, "opens": "09:30", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 2880,
            "min_notice_hours": 12,
        },
        "equipment": {
            "category": "véhicule léger",
            "condition": "good",
            "can_leave_premises": True,
        },
    },
    {
        "owner": "scop_numerique",
        "kind": "equipment",
        "title": "Imprimante 3D",
        "description": (
            "Imprimante 3D à dépôt de filament (plateau 30 × 30 cm), utilisable "
            "sur place au fablab de la coopérative. Filament PLA facturé au "
            "poids ; première utilisation accompagnée par un animateur."
        ),
        "street": "27 avenue de l'Europe",
        "postal_code": "37100",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "4.00",
        "reference_value": "15.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 480,
            "min_notice_hours": 24,
        },
        "equipment": {
            "category": "fabrication numérique",
            "condition": "good",
            "can_leave_premises": False,
        },
    },
    {
        "owner": "transports",
        "kind": "equipment",
        "title": "Véhicule utilitaire 12 m³",
        "description": (
            "Fourgon utilitaire de 12 m³ avec hayon élévateur, diables et "
            "sangles. Réservé en priorité aux déménagements et aux collectes des "
            "membres ESS. Kilométrage inclus jusqu'à 150 km par jour."
        ),
        "street": "62 avenue Jacques Duclos",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "55.00",
        "reference_value": "110.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "07:30", "closes": "19:00"},
                {"weekday": 1, "opens": "07:30", "closes": "19:00"},
                {"weekday": 2, "opens": "07:30", "closes": "19:00"},
                {"weekday": 3, "opens": "07:30", "closes": "19:00"},
                {"weekday": 4, "opens": "07:30", "closes": "19:00"},
                {"weekday": 5, "opens": "07:30", "closes": "19:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 480,
            "max_booking_minutes": 4320,
            "min_notice_hours": 48,
        },
        "equipment": {
            "category": "véhicule utilitaire",
            "condition": "good",
            "can_leave_premises": True,
        },
    },
    {
        "owner": "menuiserie",
        "kind": "equipment",
        "title": "Outillage électroportatif",
        "description": (
            "Caisse d'outillage électroportatif : perceuses-visseuses, scie "
            "circulaire, ponceuse, scie sauteuse, batteries et chargeurs. Pour "
            "les chantiers participatifs et les petits travaux d'aménagement des "
            "locaux."
        ),
        "street": "3 rue de la Papoterie",
        "postal_code": "37170",
        "commune": "Chambray-lès-Tours",
        "insee_code": "37050",
        "unit": "day",
        "capacity": 2,
        "booking_mode": "instant",
        "internal_price": "15.00",
        "reference_value": "45.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:00", "closes": "17:00"},
                {"weekday": 1, "opens": "08:00", "closes": "17:00"},
                {"weekday": 2, "opens": "08:00", "closes": "17:00"},
                {"weekday": 3, "opens": "08:00", "closes": "17:00"},
                {"weekday": 4, "opens": "08:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": 480,
            "max_booking_minutes": 7200,
            "min_notice_hours": 24,
        },
        "equipment": {"category": "outillage", "condition": "fair", "can_leave_premises": True},
    },
    {
        "owner": "ressourcerie",
        "kind": "equipment",
        "title": "Remorque plateau",
        "description": (
            "Remorque plateau de 750 kg avec ridelles, attelage standard. Pour "
            "transporter du mobilier ou du matériel encombrant sans permis "
            "remorque."
        ),
        "street": "20 rue des Grands Mortiers",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "10.00",
        "reference_value": "30.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
                {"weekday": 5, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 2880,
            "min_notice_hours": 12,
        },
        "equipment": {
            "category": "véhicule utilitaire",
            "condition": "worn",
            "can_leave_premises": True,
        },
    },
    {
        "owner": "commune_ballan",
        "kind": "equipment",
        "title": "Tables et chaises pliantes",
        "description": (
            "Lots de mobilier pliant (une table de 1,80 m et six chaises par "
            "lot) prêtés gratuitement aux associations et membres du pôle. "
            "Retrait aux services techniques."
        ),
        "street": "1 place du 11 Novembre",
        "postal_code": "37510",
        "commune": "Ballan-Miré",
        "insee_code": "37018",
        "unit": "day",
        "capacity": 10,
        "booking_mode": "approval",
        "internal_price": "0.00",
        "reference_value": "8.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:00", "closes": "12:00"},
                {"weekday": 1, "opens": "08:00", "closes": "12:00"},
                {"weekday": 2, "opens": "08:00", "closes": "12:00"},
                {"weekday": 3, "opens": "08:00", "closes": "12:00"},
                {"weekday": 4, "opens": "08:00", "closes": "12:00"},
                {"weekday": 0, "opens": "13:30", "closes": "17:00"},
                {"weekday": 1, "opens": "13:30", "closes": "17:00"},
                {"weekday": 2, "opens": "13:30", "closes": "17:00"},
                {"weekday": 3, "opens": "13:30", "closes": "17:00"},
                {"weekday": 4, "opens": "13:30", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": 4320,
            "min_notice_hours": 168,
        },
        "equipment": {"category": "mobilier", "condition": "good", "can_leave_premises": True},
    },
    {
        "owner": "scop_numerique",
        "kind": "equipment",
        "title": "Ordinateurs portables reconditionnés",
        "description": (
            "Huit ordinateurs portables reconditionnés (Linux, suite bureautique "
            "libre) pour des formations, des ateliers numériques ou un renfort "
            "temporaire. Sauvegarde et réinitialisation au retour."
        ),
        "street": "27 avenue de l'Europe",
        "postal_code": "37100",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 8,
        "booking_mode": "instant",
        "internal_price": "3.00",
        "reference_value": "15.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": 14400,
            "min_notice_hours": 24,
        },
        "equipment": {"category": "informatique", "condition": "good", "can_leave_premises": True},
    },
    {
        "owner": "tiers_lieu",
        "kind": "equipment",
        "title": "Sonorisation portable",
        "description": (
            "Système de sonorisation portable : deux enceintes amplifiées, table "
            "de mixage, deux micros sans fil. Pour les assemblées générales, "
            "conférences et fêtes de quartier."
        ),
        "street": "4 allée de l'Île d'Or",
        "postal_code": "37400",
        "commune": "Amboise",
        "insee_code": "37003",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "20.00",
        "reference_value": "80.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "19:00"},
                {"weekday": 1, "opens": "09:00", "closes": "19:00"},
                {"weekday": 2, "opens": "09:00", "closes": "19:00"},
                {"weekday": 3, "opens": "09:00", "closes": "19:00"},
                {"weekday": 4, "opens": "09:00", "closes": "19:00"},
                {"weekday": 5, "opens": "09:00", "closes": "19:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": 2880,
            "min_notice_hours": 24,
        },
        "equipment": {"category": "audiovisuel", "condition": "good", "can_leave_premises": True},
    },
    {
        "owner": "studio_graphique",
        "kind": "equipment",
        "title": "Appareil photo et kit d'éclairage",
        "description": (
            "Appareil photo hybride avec deux objectifs, trépied et kit "
            "d'éclairage LED pour des portraits, des reportages ou des photos de "
            "produits. Prêt après une courte présentation du matériel."
        ),
        "street": "19 rue Colbert",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "25.00",
        "reference_value": "90.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": 2880,
            "min_notice_hours": 48,
        },
        "equipment": {"category": "audiovisuel", "condition": "new", "can_leave_premises": True},
    },
    {
        "owner": "groupement_employeurs",
        "kind": "staff_time",
        "title": "Comptable partagée",
        "description": (
            "Comptable expérimentée salariée du groupement d'employeurs, "
            "disponible quelques heures par semaine pour la tenue comptable, les "
            "déclarations sociales et la préparation de la clôture. Facturée au "
            "temps passé, avec les frais de gestion du groupement."
        ),
        "street": "5 avenue Marcel Dassault",
        "postal_code": "37200",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "36.96",
        "reference_value": "55.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:00"},
                {"weekday": 1, "opens": "09:00", "closes": "17:00"},
                {"weekday": 2, "opens": "09:00", "closes": "17:00"},
                {"weekday": 3, "opens": "09:00", "closes": "17:00"},
                {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 120,
            "max_booking_minutes": 420,
            "min_notice_hours": 72,
        },
        "staff_time": {
            "role": "Comptable",
            "skills": ["tenue comptable", "plan comptable associatif", "paie", "clôture"],
            "employer": "groupement_employeurs",
            "max_hours_per_week": 14,
            "regime": "employers_group",
            "cost_per_unit": "33.00",
            "management_fee_percent": "12.00",
        },
    },
    {
        "owner": "scic_pole",
        "kind": "staff_time",
        "title": "Chargée de communication à temps partagé",
        "description": (
            "La chargée de communication du groupement d'employeurs, affectée à "
            "la SCIC deux jours par semaine, peut consacrer quelques heures aux "
            "autres membres : réseaux sociaux, lettre d'information, relations "
            "presse."
        ),
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "33.60",
        "reference_value": "50.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 1, "opens": "09:00", "closes": "17:30"},
                {"weekday": 3, "opens": "09:00", "closes": "17:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 420,
            "min_notice_hours": 72,
        },
        "staff_time": {
            "role": "Chargée de communication",
            "skills": ["réseaux sociaux", "rédaction", "relations presse", "PAO"],
            "employer": "groupement_employeurs",
            "max_hours_per_week": 6,
            "regime": "employers_group",
            "cost_per_unit": "30.00",
            "management_fee_percent": "12.00",
        },
    },
    {
        "owner": "ressourcerie",
        "kind": "staff_time",
        "title": "Agent d'entretien polyvalent",
        "description": (
            "Agent d'entretien polyvalent, salarié du groupement d'employeurs et "
            "mis à disposition de la ressourcerie, disponible pour le petit "
            "entretien des bâtiments, la manutention et le montage de salles "
            "chez les autres membres."
        ),
        "street": "20 rue des Grands Mortiers",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "83.60",
        "reference_value": "120.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:00", "closes": "16:00"},
                {"weekday": 1, "opens": "08:00", "closes": "16:00"},
                {"weekday": 2, "opens": "08:00", "closes": "16:00"},
                {"weekday": 3, "opens": "08:00", "closes": "16:00"},
                {"weekday": 4, "opens": "08:00", "closes": "16:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 480,
            "min_notice_hours": 48,
        },
        "staff_time": {
            "role": "Agent d'entretien polyvalent",
            "skills": ["petite maintenance", "manutention", "montage de salles"],
            "employer": "groupement_employeurs",
            "max_hours_per_week": 8,
            "regime": "employers_group",
            "cost_per_unit": "76.00",
            "management_fee_percent": "10.00",
        },
    },
    {
        "owner": "atelier_velo",
        "kind": "staff_time",
        "title": "Mécanicien cycles",
        "description": (
            "Mise à disposition du mécanicien de l'atelier (prêt de main-d'œuvre "
            "à but non lucratif, facturé au coût réel) pour entretenir une "
            "flotte de vélos de service ou animer un atelier de réparation."
        ),
        "street": "8 rue de la Fuye",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "25.00",
        "reference_value": "40.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 1, "opens": "09:30", "closes": "17:30"},
                {"weekday": 2, "opens": "09:30", "closes": "17:30"},
                {"weekday": 3, "opens": "09:30", "closes": "17:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 420,
            "min_notice_hours": 72,
        },
        "staff_time": {
            "role": "Mécanicien cycles",
            "skills": ["entretien de flotte", "diagnostic", "animation d'atelier"],
            "employer": "atelier_velo",
            "max_hours_per_week": 7,
            "regime": "direct_loan",
            "cost_per_unit": "27.50",
            "management_fee_percent": None,
        },
    },
    {
        "owner": "scop_numerique",
        "kind": "staff_time",
        "title": "Animateur numérique",
        "description": (
            "Animateur numérique de la coopérative, mis à disposition à prix "
            "coûtant pour accompagner les salariés et bénévoles des membres : "
            "outils collaboratifs, démarches en ligne, sécurité informatique de "
            "base."
        ),
        "street": "27 avenue de l'Europe",
        "postal_code": "37100",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "30.00",
        "reference_value": "55.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:00"},
                {"weekday": 1, "opens": "09:00", "closes": "17:00"},
                {"weekday": 2, "opens": "09:00", "closes": "17:00"},
                {"weekday": 3, "opens": "09:00", "closes": "17:00"},
                {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 420,
            "min_notice_hours": 48,
        },
        "staff_time": {
            "role": "Animateur numérique",
            "skills": ["outils collaboratifs", "inclusion numérique", "cybersécurité"],
            "employer": "scop_numerique",
            "max_hours_per_week": 10,
            "regime": "direct_loan",
            "cost_per_unit": "33.00",
            "management_fee_percent": None,
        },
    },
    {
        "owner": "tiers_lieu",
        "kind": "staff_time",
        "title": "Bénévoles pour chantiers et événements",
        "description": (
            "L'équipe bénévole du tiers-lieu prête main-forte aux membres pour "
            "des chantiers participatifs, des déménagements ou l'accueil "
            "d'événements. Sans contrepartie financière ; les heures sont "
            "relevées sur feuille de présence et valorisées au SMIC horaire "
            "chargé."
        ),
        "street": "4 allée de l'Île d'Or",
        "postal_code": "37400",
        "commune": "Amboise",
        "insee_code": "37003",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "0.00",
        "reference_value": "16.00",
        "valuation_basis": "volunteer_time",
        "availability": {
            "weekly_hours": [
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 5, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": 120,
            "max_booking_minutes": 480,
            "min_notice_hours": 168,
        },
        "staff_time": {
            "role": "Bénévole",
            "skills": ["accueil", "manutention", "logistique d'événement"],
            "employer": "tiers_lieu",
            "max_hours_per_week": 12,
            "regime": "direct_loan",
            "cost_per_unit": "0.00",
            "management_fee_percent": None,
        },
    },
    {
        "owner": "studio_graphique",
        "kind": "staff_time",
        "title": "Graphiste",
        "description": (
            "Une demi-journée de graphiste, mise à disposition à prix coûtant, "
            "pour mettre en page un rapport d'activité, décliner une identité "
            "visuelle ou préparer des fichiers d'impression."
        ),
        "street": "19 rue Colbert",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "140.00",
        "reference_value": "250.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 480,
            "min_notice_hours": 72,
        },
        "staff_time": {
            "role": "Graphiste",
            "skills": ["mise en page", "identité visuelle", "préparation d'impression"],
            "employer": "studio_graphique",
            "max_hours_per_week": 8,
            "regime": "direct_loan",
            "cost_per_unit": "155.00",
            "management_fee_percent": None,
        },
    },
    {
        "owner": "groupement_employeurs",
        "kind": "staff_time",
        "title": "Assistante administrative et RH",
        "description": (
            "Assistante administrative et ressources humaines du groupement "
            "d'employeurs : suivi des contrats, visites médicales, plannings, "
            "classement. Facturée aux membres utilisateurs au temps passé, frais "
            "de gestion inclus."
        ),
        "street": "5 avenue Marcel Dassault",
        "postal_code": "37200",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "instant",
        "internal_price": "28.99",
        "reference_value": "42.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "16:30"},
                {"weekday": 1, "opens": "08:30", "closes": "16:30"},
                {"weekday": 2, "opens": "08:30", "closes": "16:30"},
                {"weekday": 3, "opens": "08:30", "closes": "16:30"},
                {"weekday": 4, "opens": "08:30", "closes": "16:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": 420,
            "min_notice_hours": 24,
        },
        "staff_time": {
            "role": "Assistante administrative et RH",
            "skills": ["administration du personnel", "plannings", "secrétariat"],
            "employer": "groupement_employeurs",
            "max_hours_per_week": 10,
            "regime": "employers_group",
            "cost_per_unit": "26.00",
            "management_fee_percent": "11.50",
        },
    },
    {
        "owner": "scic_pole",
        "kind": "service",
        "title": "Comptabilité associative",
        "description": (
            "Tenue de la comptabilité des associations membres selon le "
            "règlement ANC 2018-06, y compris l'enregistrement des contributions "
            "volontaires en nature. Saisie mensuelle, rapprochements bancaires "
            "et préparation des comptes annuels."
        ),
        "street": "12 rue Édouard Vaillant",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "35.00",
        "reference_value": "60.00",
        "valuation_basis": "cost_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:00"},
                {"weekday": 1, "opens": "09:00", "closes": "17:00"},
                {"weekday": 2, "opens": "09:00", "closes": "17:00"},
                {"weekday": 3, "opens": "09:00", "closes": "17:00"},
                {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 60,
            "max_booking_minutes": None,
            "min_notice_hours": 72,
        },
        "service": {
            "deliverable": (
                "Écritures comptables saisies, rapprochements bancaires et dossier "
                "de clôture annuelle"
            )
        },
    },
    {
        "owner": "atelier_velo",
        "kind": "service",
        "title": "Réparation de vélos",
        "description": (
            "Révision ou réparation d'un vélo de service (freins, transmission, "
            "éclairage, crevaison) par l'atelier. Pièces de réemploi "
            "privilégiées, pièces neuves facturées en sus."
        ),
        "street": "8 rue de la Fuye",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "unit",
        "capacity": 4,
        "booking_mode": "instant",
        "internal_price": "15.00",
        "reference_value": "35.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 1, "opens": "09:30", "closes": "18:00"},
                {"weekday": 2, "opens": "09:30", "closes": "18:00"},
                {"weekday": 3, "opens": "09:30", "closes": "18:00"},
                {"weekday": 4, "opens": "09:30", "closes": "18:00"},
                {"weekday": 5, "opens": "09:30", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 24,
        },
        "service": {"deliverable": "Un vélo révisé et réglé, avec fiche d'intervention"},
    },
    {
        "owner": "cuisines_solidaires",
        "kind": "service",
        "title": "Traiteur solidaire",
        "description": (
            "Repas et buffets préparés par les salariés en insertion de la "
            "cuisine solidaire, avec des produits locaux et de saison. Prix par "
            "couvert, livraison possible dans la métropole tourangelle."
        ),
        "street": "14 rue de Chantepie",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "unit": "unit",
        "capacity": 150,
        "booking_mode": "approval",
        "internal_price": "9.50",
        "reference_value": "14.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "07:00", "closes": "21:00"},
                {"weekday": 1, "opens": "07:00", "closes": "21:00"},
                {"weekday": 2, "opens": "07:00", "closes": "21:00"},
                {"weekday": 3, "opens": "07:00", "closes": "21:00"},
                {"weekday": 4, "opens": "07:00", "closes": "21:00"},
                {"weekday": 5, "opens": "07:00", "closes": "21:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 120,
        },
        "service": {"deliverable": "Un couvert (entrée, plat, dessert) livré et servi"},
    },
    {
        "owner": "formation",
        "kind": "service",
        "title": "Formation Sauveteur Secouriste du Travail",
        "description": (
            "Session de formation initiale SST de deux jours, certifiante, pour "
            "les salariés et bénévoles des membres. Prix par stagiaire et par "
            "jour ; groupe de quatre à dix personnes."
        ),
        "street": "9 rue Gamard",
        "postal_code": "37300",
        "commune": "Joué-lès-Tours",
        "insee_code": "37122",
        "unit": "day",
        "capacity": 10,
        "booking_mode": "approval",
        "internal_price": "90.00",
        "reference_value": "190.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "08:30", "closes": "17:00"},
                {"weekday": 1, "opens": "08:30", "closes": "17:00"},
                {"weekday": 2, "opens": "08:30", "closes": "17:00"},
                {"weekday": 3, "opens": "08:30", "closes": "17:00"},
                {"weekday": 4, "opens": "08:30", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": 420,
            "max_booking_minutes": 840,
            "min_notice_hours": 336,
        },
        "service": {"deliverable": "Attestation de formation et certificat SST par stagiaire"},
    },
    {
        "owner": "ressourcerie",
        "kind": "service",
        "title": "Collecte et réemploi de mobilier de bureau",
        "description": (
            "Enlèvement du mobilier et du matériel de bureau dont un membre se "
            "sépare, tri et remise en circulation dans le pôle ou en boutique "
            "solidaire. Bordereau de suivi des déchets fourni."
        ),
        "street": "20 rue des Grands Mortiers",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "unit",
        "capacity": 2,
        "booking_mode": "approval",
        "internal_price": "40.00",
        "reference_value": "90.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:00"},
                {"weekday": 1, "opens": "09:00", "closes": "17:00"},
                {"weekday": 2, "opens": "09:00", "closes": "17:00"},
                {"weekday": 3, "opens": "09:00", "closes": "17:00"},
                {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 96,
        },
        "service": {"deliverable": "Un enlèvement sur site avec bordereau de réemploi"},
    },
    {
        "owner": "scop_numerique",
        "kind": "service",
        "title": "Maintenance informatique",
        "description": (
            "Dépannage et maintenance du parc informatique des membres, sur site "
            "ou à distance : postes, imprimantes, réseau, sauvegardes."
        ),
        "street": "27 avenue de l'Europe",
        "postal_code": "37100",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "hour",
        "capacity": 2,
        "booking_mode": "instant",
        "internal_price": "35.00",
        "reference_value": "65.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 30,
            "max_booking_minutes": 480,
            "min_notice_hours": 4,
        },
        "service": {"deliverable": "Intervention de maintenance avec compte rendu"},
    },
    {
        "owner": "transports",
        "kind": "service",
        "title": "Livraison et petits transports",
        "description": (
            "Un chauffeur et un fourgon pour une demi-journée de livraisons, de "
            "collectes ou de transport de matériel entre les sites des membres "
            "dans l'agglomération de Tours."
        ),
        "street": "62 avenue Jacques Duclos",
        "postal_code": "37700",
        "commune": "Saint-Pierre-des-Corps",
        "insee_code": "37233",
        "unit": "half_day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "90.00",
        "reference_value": "160.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "07:30", "closes": "18:30"},
                {"weekday": 1, "opens": "07:30", "closes": "18:30"},
                {"weekday": 2, "opens": "07:30", "closes": "18:30"},
                {"weekday": 3, "opens": "07:30", "closes": "18:30"},
                {"weekday": 4, "opens": "07:30", "closes": "18:30"},
            ],
            "closures": [
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                }
            ],
            "min_booking_minutes": 240,
            "max_booking_minutes": 480,
            "min_notice_hours": 48,
        },
        "service": {"deliverable": "Une demi-journée de transport avec chauffeur"},
    },
    {
        "owner": "studio_graphique",
        "kind": "service",
        "title": "Création d'affiches et de supports de communication",
        "description": (
            "Conception d'une affiche et de ses déclinaisons (flyer, visuel pour "
            "les réseaux sociaux) à partir des éléments fournis par le membre. "
            "Deux allers-retours de corrections inclus."
        ),
        "street": "19 rue Colbert",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "unit",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "150.00",
        "reference_value": "350.00",
        "valuation_basis": "market_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "18:00"},
                {"weekday": 1, "opens": "09:00", "closes": "18:00"},
                {"weekday": 2, "opens": "09:00", "closes": "18:00"},
                {"weekday": 3, "opens": "09:00", "closes": "18:00"},
                {"weekday": 4, "opens": "09:00", "closes": "18:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                }
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 168,
        },
        "service": {
            "deliverable": ("Fichiers d'impression et visuels numériques prêts à diffuser")
        },
    },
    {
        "owner": "energie_citoyenne",
        "kind": "service",
        "title": "Diagnostic énergétique des locaux",
        "description": (
            "Visite et diagnostic énergétique des locaux d'un membre : relevé "
            "des consommations, thermographie, potentiel de production solaire "
            "en toiture et pistes d'économies chiffrées."
        ),
        "street": "2 rue du Port",
        "postal_code": "37230",
        "commune": "Luynes",
        "insee_code": "37139",
        "unit": "unit",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "200.00",
        "reference_value": "600.00",
        "valuation_basis": "cost_price",
        "availability": {
            "weekly_hours": [
                {"weekday": 0, "opens": "09:00", "closes": "17:00"},
                {"weekday": 1, "opens": "09:00", "closes": "17:00"},
                {"weekday": 2, "opens": "09:00", "closes": "17:00"},
                {"weekday": 3, "opens": "09:00", "closes": "17:00"},
                {"weekday": 4, "opens": "09:00", "closes": "17:00"},
            ],
            "closures": [
                {
                    "start_date": "2026-08-03",
                    "end_date": "2026-08-21",
                    "reason": "Fermeture estivale",
                },
                {
                    "start_date": "2026-12-24",
                    "end_date": "2027-01-01",
                    "reason": "Fermeture de fin d'année",
                },
            ],
            "min_booking_minutes": None,
            "max_booking_minutes": None,
            "min_notice_hours": 336,
        },
        "service": {
            "deliverable": ("Rapport de diagnostic énergétique avec plan d'actions chiffré")
        },
    },
]
