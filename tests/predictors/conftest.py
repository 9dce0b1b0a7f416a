import pytest
from predictor_toys import known_data


@pytest.fixture(scope="module")
def data():
    return known_data()
