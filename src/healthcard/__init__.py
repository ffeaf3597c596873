"""HealthCard: the national resident health card system (居民健康卡)."""

__version__ = "0.1.0"
