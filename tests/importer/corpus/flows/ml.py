from enum import Enum

import prefect


class Model(str, Enum):
    XGB = "xgb"
    LINEAR = "linear"


@prefect.flow(name="train-model", description="Train and register the demand model.")
def train(model: Model = Model.XGB, epochs: int = 10, learning_rate: float = 0.1) -> None:
    print(model, epochs, learning_rate)
