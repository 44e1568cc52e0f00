"""How the app says a count in words, the same way on every page and in the CLI."""


def plural(count: int, noun: str) -> str:
    """'1 epoch', '2 epochs', '1,000 images': the count with its noun, plural unless it is exactly one."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def share(probability: float) -> str:
    """A probability as a model's confidence: '72.5%', never '100.0%' for what rounds up to it ('over 99.9%')."""
    return "over 99.9%" if probability >= 0.9995 else f"{probability:.1%}"


def points(difference: float, signed: bool = True) -> str:
    """A difference of two accuracies in percentage points: '+0.76 points' (a '%' would read as relative)."""
    return f"{difference * 100:{'+' if signed else ''}.2f} points"
