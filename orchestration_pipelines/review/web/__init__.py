"""The reviewer inbox web app and its JSON API, served by ``make review``."""
