"""Labels of the diagnosis corpus (issue 11): buggy/fixed pairs and sound reference designs.

This module imports no framework. Factories live in the family modules next to it
(``keras_heads``, ``keras_body``, ``torch_heads``, ``torch_body``, ``sound_keras``,
``sound_torch``): a pair ``k-softmax-one-unit-binary`` in module ``keras_heads`` is built
by ``keras_heads.softmax_one_unit_binary_buggy()`` and ``..._fixed()`` (the id without its
``k-``/``t-`` prefix, dashes as underscores); a sound design ``ks-unet`` by
``sound_keras.unet()``.

What the labels mean
--------------------
``category``
    The rule category (the project's fixed vocabulary, ``modellint.rules.base.CATEGORIES``)
    of the fault, taken as *where the fix lives*: the fixed twin shows it. A head whose
    activation is wrong for its loss is ``output-head`` when the fixed twin changes the
    head, ``loss`` when it changes the loss.
``visible``
    Whether the fault can be seen in the model (file or live object) together with the
    facts of this entry: the dataset facts (``facts``), the loss and optimizer a PyTorch
    user states, and the task when the entry states one. ``False`` when it depends on the
    data itself (pixel range, sequence layout, vocabulary size, target range).
``facts``
    The dataset facts a user would pass (``--samples``, ``--classes``, ``--image-size``).
``task``
    The task when the file cannot tell it (the vocabulary is :data:`TASKS`); ``None``
    when the loss, head and facts already say it.
``loss`` / ``fixed_loss``
    PyTorch only: the loss the user trains with, by PyTorch's own class name (what they
    would pass as ``--loss``); ``fixed_loss`` when the fix changes it.
``optimizer`` / ``fixed_optimizer``
    PyTorch only: ``{"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}``
    as constructed in the training script (torch.optim semantics: Adam's weight_decay
    is coupled, AdamW's decoupled). Keras models carry theirs in the compile config.
``min_severity``
    The severity at which the fault counts as reported (``warning`` unless the
    project's reference output asks for less: BatchNorm on the raw input is an
    ``info`` in ``shared/reference/what-good-output-looks-like.md``).
``source``
    The public source kind the case was written from, with the class of the taxonomy of
    real faults in deep-learning systems (Humbatova et al., ICSE 2020) it belongs to.
``differs_in``
    ``"graph"`` (the twins differ in the layer graph or the stated training setup) or
    ``"weights"`` (only in the initial weights the live module holds: zero initialisation
    done in ``__init__``).
``allowed`` (sound designs)
    Warning codes that are right on this design, each with the reason; any other
    warning or error on a sound design is a false warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

#: The project's fixed category vocabulary (modellint.rules.base.CATEGORIES; a test checks they agree).
CATEGORIES = ("activation", "loss", "optimizer", "learning-rate", "normalization", "architecture",
              "capacity", "receptive-field", "regularization", "initialization", "input-shape",
              "output-head", "efficiency", "data", "training", "weights")

#: Tasks a user can state when the file cannot tell (issue 11's list).
TASKS = {
    "binary": "one yes/no label per sample",
    "multiclass": "one of C exclusive classes per sample",
    "multilabel": "any subset of C labels per sample",
    "regression": "one real value (or vector) per sample, any sign, unbounded",
    "regression-bounded": "one real value per sample within a known interval (e.g. [0, 1])",
    "regression-nonnegative": "one non-negative value per sample (counts, durations)",
    "segmentation": "a label per pixel",
    "sequence-labelling": "a label per time step",
    "seq2seq": "an output sequence per input sequence",
    "reconstruction": "the input itself (autoencoders)",
    "embedding": "a feature vector per sample (metric learning)",
}

#: PyTorch loss class names the corpus uses (what a user passes as --loss).
TORCH_LOSSES = ("CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss",
                "SmoothL1Loss", "HuberLoss", "PoissonNLLLoss")

SEVERITIES = ("info", "warning", "error")

H = "Humbatova et al. 2020"  # short prefix for the taxonomy class in ``source``

# Dataset facts used by several cases (as a user would state them).
MNIST = {"classes": 10, "samples": 60000, "image_size": (28, 28)}
CIFAR10 = {"classes": 10, "samples": 50000, "image_size": (32, 32)}


@dataclass(frozen=True)
class Pair:
    id: str
    framework: str  # "keras" | "torch"
    module: str
    category: str
    visible: bool
    description: str
    source: str
    facts: dict = field(default_factory=dict)
    task: Optional[str] = None
    loss: Optional[str] = None
    fixed_loss: Optional[str] = None
    optimizer: Optional[dict] = None
    fixed_optimizer: Optional[dict] = None
    min_severity: str = "warning"
    slow: bool = False
    differs_in: str = "graph"  # "weights": the twins differ only in their initial weights

    @property
    def slug(self) -> str:
        return self.id.split("-", 1)[1].replace("-", "_")

    def factory_name(self, variant: str) -> str:
        assert variant in ("buggy", "fixed"), variant
        return f"{self.slug}_{variant}"

    def loss_for(self, variant: str) -> Optional[str]:
        return self.fixed_loss if variant == "fixed" and self.fixed_loss else self.loss

    def optimizer_for(self, variant: str) -> Optional[dict]:
        return self.fixed_optimizer if variant == "fixed" and self.fixed_optimizer else self.optimizer


@dataclass(frozen=True)
class Sound:
    id: str
    framework: str
    module: str
    description: str
    source: str
    facts: dict = field(default_factory=dict)
    task: Optional[str] = None
    loss: Optional[str] = None
    optimizer: Optional[dict] = None
    allowed: dict = field(default_factory=dict)  # code -> why that warning is right here
    slow: bool = False

    @property
    def slug(self) -> str:
        return self.id.split("-", 1)[1].replace("-", "_")

    def factory_name(self, variant: Optional[str] = None) -> str:
        return self.slug

    def loss_for(self, variant=None) -> Optional[str]:
        return self.loss

    def optimizer_for(self, variant=None) -> Optional[dict]:
        return self.optimizer


def _k(id, module, category, description, source, visible=True, **kw) -> Pair:
    return Pair(id, "keras", module, category, visible, description, source, **kw)


def _t(id, module, category, description, source, visible=True, loss="CrossEntropyLoss", **kw) -> Pair:
    return Pair(id, "torch", module, category, visible, description, source, loss=loss, **kw)


KH, KB, TH, TB = "keras_heads", "keras_body", "torch_heads", "torch_body"

ACT_TYPE = f"{H}: Model › Layers › Activation function › Wrong type of activation function"
ACT_MISSING = f"{H}: Model › Layers › Activation function › Missing activation function"
LOSS_WRONG = f"{H}: Training › Loss function › Wrong loss function calculation / wrong selection"
UNITS = f"{H}: Model › Layers › Layer properties › Wrong number of neurons"
SHAPE = f"{H}: Tensors & Inputs › Wrong tensor shape"
MISSING_LAYER = f"{H}: Model › Layers › Missing/redundant/wrong layer"
NORM = f"{H}: Model › Layers › Missing/redundant/wrong layer (normalization placement)"
LR = f"{H}: Training › Hyperparameters › Suboptimal learning rate"
OPT = f"{H}: Training › Optimiser › Wrong optimisation function / hyperparameters"
INIT = f"{H}: Model › Model properties › Wrong weights initialisation"
REG = f"{H}: Model › Layers › Layer properties › Wrong dropout rate / placement"
CAPACITY = f"{H}: Model › Model properties › Suboptimal network structure (too many parameters for the data)"
STRUCT = f"{H}: Model › Model properties › Suboptimal network structure"
PREP = f"{H}: Training › Preprocessing of training data › Missing normalisation"
INPUT = f"{H}: Tensors & Inputs › Wrong input format / shape"

PAIRS = [
    # ---------------------------------------------------------------- Keras: head and loss
    _k("k-softmax-one-unit-binary", KH, "output-head",
       "Dense(1, activation='softmax') + binary_crossentropy on a binary tabular task: the output is always 1.0",
       f"Stack Overflow kind: 'binary classifier accuracy stuck at 50 %'; {ACT_TYPE}",
       facts={"classes": 2, "samples": 569}),
    _k("k-softmax-one-unit-regression", KH, "output-head",
       "Dense(1, activation='softmax') + mse on a house-price regression (functional API): constant output",
       f"Stack Overflow kind: 'regression predicts the same value for every input'; {ACT_TYPE}",
       facts={"samples": 404}, task="regression"),
    _k("k-sigmoid-cce-single-label", KH, "output-head",
       "Dense(10, sigmoid) + categorical_crossentropy on single-label CIFAR-10",
       f"Cross Validated / Stack Overflow kind: 'sigmoid or softmax for multi-class?'; {ACT_TYPE}",
       facts=CIFAR10),
    _k("k-relu-output-ce", KH, "output-head",
       "Dense(10, relu) output into sparse_categorical_crossentropy (from_logits=False): loss becomes NaN",
       f"Stack Overflow kind: 'loss is nan from the first epoch'; {ACT_TYPE}",
       facts=MNIST),
    _k("k-linear-output-ce-no-logits", KH, "loss",
       "Dense(5) with no activation, compiled with the string 'sparse_categorical_crossentropy' "
       "(from_logits=False): logits are read as probabilities (TF flowers tutorial model)",
       f"Stack Overflow kind: 'tutorial model does not learn after I changed the loss'; {LOSS_WRONG}",
       facts={"classes": 5, "samples": 3670, "image_size": (96, 96)}),
    _k("k-from-logits-double-softmax", KH, "loss",
       "Dense(10, softmax) + SparseCategoricalCrossentropy(from_logits=True): softmax applied twice",
       f"Stack Overflow kind: 'from_logits=True and softmax: accuracy stuck'; {LOSS_WRONG}",
       facts=MNIST),
    _k("k-mse-on-softmax", KH, "loss",
       "Dense(3, softmax) trained with mean_squared_error on one-hot iris labels",
       f"Cross Validated kind: 'why not MSE for classification?'; {LOSS_WRONG}",
       facts={"classes": 3, "samples": 150}),
    _k("k-bce-on-multiclass-softmax", KH, "loss",
       "Dense(4, softmax) + binary_crossentropy on single-label 4-class news topics (inflated accuracy)",
       f"Stack Overflow kind: 'binary_crossentropy gives higher accuracy than categorical'; {LOSS_WRONG}",
       facts={"classes": 4, "samples": 120000}),
    _k("k-cce-on-one-sigmoid", KH, "loss",
       "Dense(1, sigmoid) + categorical_crossentropy: the loss of one renormalised unit is always 0",
       f"Stack Overflow kind: 'categorical_crossentropy loss is 0 from the start'; {LOSS_WRONG}",
       facts={"classes": 2, "samples": 4601}),
    _k("k-wrong-units", KH, "output-head",
       "Dense(10, softmax) for a 13-class dataset (copied from a CIFAR-10 example)",
       f"Stack Overflow kind: 'received a label value of 12 which is outside the valid range'; {UNITS}",
       facts={"classes": 13, "samples": 26000, "image_size": (64, 64)}),
    _k("k-dense-on-feature-map", KH, "output-head",
       "Dense(10, softmax) right after the last MaxPooling2D, no Flatten: output (None, 5, 5, 10)",
       f"Stack Overflow kind: 'Dense layer output has 4 dimensions'; {MISSING_LAYER}",
       facts=MNIST),
    _k("k-dense-on-sequence", KH, "output-head",
       "Embedding → Dense → Dense(1, sigmoid) with no pooling over tokens: output (None, 200, 1)",
       f"Stack Overflow kind: 'binary text classifier outputs one value per word'; {MISSING_LAYER}",
       facts={"classes": 2, "samples": 25000}),
    _k("k-lstm-return-sequences", KH, "output-head",
       "LSTM(return_sequences=True) feeding Dense(1) in a sequence-to-one forecaster: output (None, 45, 1)",
       f"Stack Overflow kind: 'LSTM prediction has shape (n, 45, 1)'; {SHAPE}",
       facts={"samples": 5000}, task="regression"),
    _k("k-softmax-regression", KH, "output-head",
       "Dense(2, softmax) predicting (lat, lon) coordinates with mse: outputs forced to sum to 1",
       f"Stack Overflow kind: 'regression outputs always sum to one'; {ACT_TYPE}",
       facts={"samples": 20000}, task="regression"),
    _k("k-sigmoid-unbounded-target", KH, "output-head",
       "Dense(1, sigmoid) + mse on prices in thousands: the output cannot exceed 1 (visible only in the targets)",
       f"Stack Overflow kind: 'regression predictions never go above 1'; {ACT_TYPE}",
       visible=False, facts={"samples": 404}),
    _k("k-relu-output-regression", KH, "output-head",
       "Dense(1, relu) at the output of a regression on a standardised (signed) target",
       f"Stack Overflow kind: 'model predicts 0 for half the samples'; {ACT_TYPE}",
       facts={"samples": 10000}, task="regression"),
    _k("k-relu-before-softmax", KH, "output-head",
       "Dense(46, relu) followed by Activation('softmax'): ReLU clips every negative logit (Reuters)",
       f"Stack Overflow kind: 'ReLU before softmax in the last layer'; {ACT_TYPE}",
       facts={"classes": 46, "samples": 8982}),
    # ---------------------------------------------------------------- Keras: body and training
    _k("k-no-nonlinearity-mlp", KB, "activation",
       "Dense(128) → Dense(64) → Dense(10, softmax) with no activations: one linear map",
       f"Stack Overflow kind: 'deep MLP no better than logistic regression'; {ACT_MISSING}",
       facts=MNIST),
    _k("k-cnn-no-activation", KB, "activation",
       "Conv2D(use_bias=False) → BatchNormalization blocks with no activation anywhere (functional)",
       f"GitHub issue / Stack Overflow kind: 'forgot Activation after BatchNormalization'; {ACT_MISSING}",
       facts=CIFAR10),
    _k("k-sigmoid-deep-mlp", KB, "activation",
       "eight Dense(64, sigmoid) layers, no normalization: vanishing gradients",
       f"Cross Validated kind: 'deep sigmoid network does not train'; {ACT_TYPE}",
       facts=MNIST),
    _k("k-softmax-hidden", KB, "activation",
       "Dense(64, softmax) as a hidden layer of a churn classifier",
       f"Stack Overflow kind: 'softmax in hidden layers'; {ACT_TYPE}",
       facts={"classes": 2, "samples": 7043}),
    _k("k-bn-raw-input", KB, "normalization",
       "BatchNormalization as the first layer on raw pixels instead of a fixed scaling",
       f"Stack Overflow kind: 'BatchNormalization instead of normalising the input'; {NORM}",
       facts=MNIST, min_severity="info"),
    _k("k-dropout-before-bn", KB, "normalization",
       "Dense → Dropout(0.5) → BatchNormalization in the head (variance shift)",
       f"Stack Overflow kind: 'order of Dropout and BatchNormalization'; {NORM}",
       facts=CIFAR10),
    _k("k-bn-before-softmax", KB, "normalization",
       "Dense(10) → BatchNormalization → softmax: logits normalised per batch",
       f"Stack Overflow kind: 'BatchNormalization before the output layer'; {NORM}",
       facts={"classes": 10, "samples": 20000}),
    _k("k-small-receptive-field", KB, "receptive-field",
       "three conv stages then global pooling on 128×128 images: the last layer sees 18 px",
       f"Cross Validated kind: 'CNN cannot recognise large objects'; {STRUCT}",
       facts={"classes": 13, "samples": 26000, "image_size": (128, 128)}),
    _k("k-aggressive-stem", KB, "receptive-field",
       "ImageNet stem (7×7 stride 2 + 3×3 max-pool stride 2) on 32×32 CIFAR images",
       f"Stack Overflow kind: 'ResNet on CIFAR-10 gets only 60 %'; {STRUCT}",
       facts=CIFAR10),
    _k("k-feature-map-collapse", KB, "receptive-field",
       "four MaxPooling2D on 28×28 input, then two 3×3 convs on a 1×1 map",
       f"Stack Overflow kind: 'negative dimension size' / too many pooling layers; {STRUCT}",
       facts=MNIST),
    _k("k-huge-flatten-head", KB, "architecture",
       "Flatten(4×4×128) → Dense(512): the dense layer holds 81 % of the parameters",
       f"Stack Overflow kind: 'CNN overfits, most parameters in the dense layer'; {STRUCT}",
       facts={"classes": 10, "samples": 20000, "image_size": (64, 64)}),
    _k("k-vgg-head-split", KB, "architecture",
       "VGG-style head Flatten → Dense(128) → Dense(512) → Dense(512): 86 % of the parameters, "
       "none of the Dense layers alone over half",
       f"Issue 11 report (VGG-style CIFAR head) / Stack Overflow kind; {STRUCT}",
       facts=CIFAR10),
    _k("k-lr-too-high", KB, "learning-rate",
       "SGD(learning_rate=10.0): the loss diverges",
       f"Stack Overflow kind: 'loss explodes to nan after a few steps'; {LR}",
       facts={"classes": 10, "samples": 60000}),
    _k("k-lr-too-low", KB, "learning-rate",
       "Adam(learning_rate=1e-7): nothing moves in 20 epochs",
       f"Stack Overflow kind: 'accuracy does not change during training'; {LR}",
       facts=MNIST),
    _k("k-sgd-tiny-lr-no-momentum", KB, "learning-rate",
       "SGD(learning_rate=1e-5) without momentum on tabular data: training crawls",
       f"Stack Overflow kind: 'loss decreases extremely slowly'; {LR}",
       facts={"classes": 7, "samples": 581012}),
    _k("k-zeros-init", KB, "initialization",
       "hidden Dense layers with kernel_initializer='zeros': every unit stays identical",
       f"Stack Overflow kind: 'all neurons learn the same thing'; {INIT}",
       facts={"classes": 10, "samples": 60000}),
    _k("k-ones-init-conv", KB, "initialization",
       "Conv2D(kernel_initializer='ones') in every conv layer: symmetric filters, exploding activations",
       f"GitHub issue kind: 'model predicts one class after custom initializer'; {INIT}",
       facts=CIFAR10),
    _k("k-dropout-keep-prob", KB, "regularization",
       "Dropout(0.8) meant as TF1's keep_prob: 80 % of units dropped",
       f"Stack Overflow kind: 'Keras dropout rate vs TensorFlow keep_prob'; {REG}",
       facts={"classes": 10, "samples": 60000}),
    _k("k-dropout-on-output", KB, "regularization",
       "Dropout(0.3) after the softmax output layer",
       f"Stack Overflow kind: 'dropout after the last layer'; {REG}",
       facts={"classes": 6, "samples": 10000}),
    _k("k-too-many-params-small-data", KB, "capacity",
       "1.1 M-parameter MLP, no regularisation, for 300 tabular samples",
       f"Cross Validated kind: 'training accuracy 100 %, validation 60 %'; {CAPACITY}",
       facts={"classes": 2, "samples": 300}),
    _k("k-channels-first-mix", KB, "input-shape",
       "Conv2D(data_format='channels_first') on a channels-last 64×64×3 input: 64 rows read as channels",
       f"real file (issue 11) / Stack Overflow kind: 'channels_first conv on channels_last data'; {INPUT}",
       facts={"classes": 5, "samples": 50000, "image_size": (64, 64)}),
    _k("k-image-size-mismatch", KB, "input-shape",
       "Input(224, 224, 3) for 32×32 images (upsampled 7× by the pipeline)",
       f"Stack Overflow kind: 'resize CIFAR to 224 for my own CNN'; {INPUT}",
       facts=CIFAR10),
    _k("k-lstm-axes-swapped", KB, "input-shape",
       "LSTM input declared (9, 128) for data of 128 steps × 9 sensor channels (visible only in the data)",
       f"Stack Overflow kind: 'LSTM input shape timesteps vs features'; {INPUT}",
       visible=False, facts={"classes": 6, "samples": 7352}),
    _k("k-unscaled-pixels", KB, "data",
       "CIFAR CNN without Rescaling, fed uint8 pixels 0–255 (visible only in the data)",
       f"Stack Overflow kind: 'CNN stuck at 10 % accuracy'; {PREP}",
       visible=False, facts=CIFAR10),
    # ---------------------------------------------------------------- PyTorch: head and loss
    _t("t-softmax-before-ce", TH, "output-head",
       "nn.Softmax(dim=1) as the last module of an nn.Sequential trained with nn.CrossEntropyLoss",
       f"PyTorch forums / Stack Overflow kind: 'softmax before CrossEntropyLoss'; {ACT_TYPE}",
       facts=MNIST),
    _t("t-functional-softmax-before-ce", TH, "output-head",
       "F.softmax(x, dim=1) at the end of forward(), trained with nn.CrossEntropyLoss",
       f"PyTorch forums kind: 'loss stuck at 2.30'; {ACT_TYPE}",
       facts=CIFAR10),
    _t("t-linear1-for-10-classes", TH, "output-head",
       "nn.Linear(64, 1) as the head of a 10-class classifier trained with CrossEntropyLoss",
       f"PyTorch forums kind: 'Target 3 is out of bounds'; {UNITS}",
       facts=CIFAR10),
    _t("t-bce-on-logits", TH, "loss",
       "nn.BCELoss on the raw output of nn.Linear(32, 1) (no sigmoid)",
       f"PyTorch forums kind: 'all elements of input should be between 0 and 1'; {LOSS_WRONG}",
       loss="BCELoss", fixed_loss="BCEWithLogitsLoss", facts={"classes": 2, "samples": 569}),
    _t("t-nll-without-log-softmax", TH, "output-head",
       "nn.NLLLoss on logits: no log_softmax, the loss is unbounded below",
       f"PyTorch forums kind: 'NLLLoss negative'; {ACT_MISSING}",
       loss="NLLLoss", facts=MNIST),
    _t("t-sigmoid-before-bce-with-logits", TH, "output-head",
       "nn.Sigmoid at the end, trained with nn.BCEWithLogitsLoss: sigmoid applied twice",
       f"PyTorch forums kind: 'BCEWithLogitsLoss with sigmoid output'; {ACT_TYPE}",
       loss="BCEWithLogitsLoss", facts={"classes": 2, "samples": 569}),
    _t("t-relu-regression-output", TH, "output-head",
       "nn.ReLU after the last Linear of a regression on a standardised (signed) target, MSELoss",
       f"Issue 11 report / PyTorch forums kind: 'regression outputs only zeros'; {ACT_TYPE}",
       loss="MSELoss", facts={"samples": 10000}, task="regression"),
    _t("t-relu-after-logits", TH, "output-head",
       "nn.ReLU applied to the logits before nn.CrossEntropyLoss",
       f"PyTorch forums kind: 'ReLU on the last layer'; {ACT_TYPE}",
       facts=CIFAR10),
    _t("t-sigmoid-into-ce", TH, "output-head",
       "nn.Sigmoid outputs into nn.CrossEntropyLoss on single-label MNIST",
       f"PyTorch forums kind: 'sigmoid with CrossEntropyLoss'; {ACT_TYPE}",
       facts=MNIST),
    _t("t-mse-on-classifier", TH, "loss",
       "softmax outputs trained with nn.MSELoss on one-hot CIFAR-10 labels (fix: logits + CrossEntropyLoss)",
       f"Cross Validated kind: 'MSE for classification'; {LOSS_WRONG}",
       loss="MSELoss", fixed_loss="CrossEntropyLoss", facts=CIFAR10),
    _t("t-softmax-one-unit", TH, "output-head",
       "nn.Softmax(dim=1) over a single output unit with nn.BCELoss: output always 1.0",
       f"Stack Overflow kind: 'binary classifier always predicts 1'; {ACT_TYPE}",
       loss="BCELoss", facts={"classes": 2, "samples": 569}),
    _t("t-encoder-no-pooling", TH, "output-head",
       "Transformer encoder → nn.Linear(64, 1) on every token of a per-review score: output (N, 100, 1)",
       f"PyTorch forums kind: 'UserWarning: Using a target size that is different to the input size'; "
       f"{MISSING_LAYER}",
       loss="MSELoss", facts={"samples": 50000}, task="regression"),
    _t("t-lstm-all-steps-to-head", TH, "output-head",
       "LSTM output of every step into nn.Linear(50, 1) for a sequence-to-one forecast: output (N, 45, 1)",
       f"Stack Overflow kind: 'LSTM forecaster output shape'; {SHAPE}",
       loss="MSELoss", facts={"samples": 5000}, task="regression"),
    # ---------------------------------------------------------------- PyTorch: body and training
    _t("t-missing-activation-mlp", TB, "activation",
       "nn.Sequential of three nn.Linear with no activation between them",
       f"PyTorch forums kind: 'my MLP is no better than linear regression'; {ACT_MISSING}",
       facts=MNIST),
    _t("t-missing-activation-cnn", TB, "activation",
       "conv → BatchNorm2d → max_pool blocks with no ReLU in forward()",
       f"PyTorch forums kind: 'forgot F.relu in forward'; {ACT_MISSING}",
       facts=CIFAR10),
    _t("t-sigmoid-deep-plain", TB, "activation",
       "eight nn.Linear + nn.Sigmoid in a ModuleList loop, no normalization",
       f"Cross Validated kind: 'vanishing gradients with sigmoid'; {ACT_TYPE}",
       facts=MNIST),
    _t("t-softmax-hidden", TB, "activation",
       "nn.Softmax(dim=1) between hidden nn.Linear layers",
       f"PyTorch forums kind: 'softmax as hidden activation'; {ACT_TYPE}",
       facts={"classes": 2, "samples": 7043}),
    _t("t-lstm-batch-first", TB, "input-shape",
       "nn.LSTM(batch_first=False) fed (batch, 128, 9) from a DataLoader; out[:, -1] then picks the last sample",
       f"Issue 11 report / PyTorch forums kind: 'LSTM batch_first confusion'; {INPUT}",
       facts={"classes": 6, "samples": 7352}),
    _t("t-embedding-vocab-too-small", TB, "input-shape",
       "nn.Embedding(1000, 64) for a 20,000-token vocabulary (visible only in the data: index out of range)",
       f"Stack Overflow kind: 'IndexError: index out of range in self'; {INPUT}",
       visible=False, facts={"classes": 4, "samples": 120000}),
    _t("t-dropout-before-bn", TB, "normalization",
       "Conv → ReLU → Dropout(0.3) → BatchNorm2d in every block",
       f"PyTorch forums kind: 'order of dropout and batchnorm'; {NORM}",
       facts=CIFAR10),
    _t("t-bn-raw-input", TB, "normalization",
       "nn.BatchNorm2d(1) as the first module instead of transforms.Normalize",
       f"PyTorch forums kind: 'BatchNorm as input normalization'; {NORM}",
       facts=MNIST, min_severity="info"),
    _t("t-bn-before-logits", TB, "normalization",
       "nn.BatchNorm1d(10) on the logits before nn.CrossEntropyLoss",
       f"PyTorch forums kind: 'BatchNorm on the output layer'; {NORM}",
       facts={"classes": 10, "samples": 20000}),
    _t("t-zero-init", TB, "initialization",
       "nn.init.zeros_ on every Linear weight in __init__: hidden units stay identical",
       f"PyTorch forums kind: 'network does not learn after zero init'; {INIT}",
       facts=MNIST, differs_in="weights"),
    _t("t-small-rf", TB, "receptive-field",
       "three conv stages then AdaptiveAvgPool2d on 128×128 images: the last layer sees 18 px",
       f"Cross Validated kind: 'CNN cannot recognise large objects'; {STRUCT}",
       facts={"classes": 13, "samples": 26000, "image_size": (128, 128)}),
    _t("t-aggressive-stem", TB, "receptive-field",
       "torchvision ResNet stem (7×7 stride 2, max-pool stride 2) on 32×32 images",
       f"PyTorch forums kind: 'ResNet18 on CIFAR-10 only 75 %'; {STRUCT}",
       facts=CIFAR10),
    _t("t-feature-collapse", TB, "receptive-field",
       "four MaxPool2d on 28×28 input, then two 3×3 convs on a 1×1 map",
       f"PyTorch forums kind: 'Output size is too small'; {STRUCT}",
       facts=MNIST),
    _t("t-huge-flatten-head", TB, "architecture",
       "Flatten(64×8×8) → Linear(4096, 256): 95 % of the parameters in one layer",
       f"PyTorch forums kind: 'CNN overfits small dataset'; {STRUCT}",
       facts={"classes": 10, "samples": 20000, "image_size": (64, 64)}),
    _t("t-no-positional-encoding", TB, "architecture",
       "ViT on 4×4 patches with no positional embedding: the encoder is permutation-invariant",
       f"PyTorch forums / GitHub kind: 'ViT without position embedding'; {MISSING_LAYER}",
       facts=CIFAR10),
    _t("t-dropout-p-high", TB, "regularization",
       "nn.Dropout(p=0.9) after each hidden layer",
       f"PyTorch forums kind: 'p is the probability of zeroing'; {REG}",
       facts=MNIST),
    _t("t-dropout-after-logits", TB, "regularization",
       "nn.Dropout(0.5) after the last nn.Linear (on the logits)",
       f"PyTorch forums kind: 'dropout on the output layer'; {REG}",
       facts={"classes": 6, "samples": 10000}),
    _t("t-too-many-params", TB, "capacity",
       "1.1 M-parameter MLP, no regularisation, for 200 tabular samples",
       f"Cross Validated kind: 'overfitting a tiny dataset'; {CAPACITY}",
       facts={"classes": 2, "samples": 200}),
    _t("t-lr-too-high", TB, "learning-rate",
       "torch.optim.SGD(lr=10) for the CIFAR tutorial network",
       f"PyTorch forums kind: 'loss is nan'; {LR}",
       facts=CIFAR10, optimizer={"name": "sgd", "lr": 10.0, "momentum": 0.0},
       fixed_optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}),
    _t("t-lr-too-low", TB, "learning-rate",
       "torch.optim.Adam(lr=1e-7)",
       f"PyTorch forums kind: 'loss does not decrease'; {LR}",
       facts=MNIST, optimizer={"name": "adam", "lr": 1e-7}, fixed_optimizer={"name": "adam", "lr": 1e-3}),
    _t("t-sgd-tiny-lr", TB, "learning-rate",
       "torch.optim.SGD(lr=1e-5) without momentum",
       f"PyTorch forums kind: 'training is very slow'; {LR}",
       facts=CIFAR10, optimizer={"name": "sgd", "lr": 1e-5, "momentum": 0.0},
       fixed_optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}),
    _t("t-adam-coupled-weight-decay", TB, "optimizer",
       "torch.optim.Adam(weight_decay=0.05) for a ViT (coupled L2; AdamW intended)",
       f"PyTorch forums / Loshchilov & Hutter kind: 'Adam weight_decay vs AdamW'; {OPT}",
       facts=CIFAR10, optimizer={"name": "adam", "lr": 1e-3, "weight_decay": 0.05},
       fixed_optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.05}),
]


def _ks(id, description, source, **kw) -> Sound:
    return Sound(id, "keras", "sound_keras", description, source, **kw)


def _ts(id, description, source, loss="CrossEntropyLoss", **kw) -> Sound:
    return Sound(id, "torch", "sound_torch", description, source, loss=loss, **kw)


SOUND = [
    _ks("ks-mobilenetv2-top", "keras.applications.MobileNetV2(alpha=0.35, include_top=True, classes=10) at 96×96",
        "keras.applications", facts={"classes": 10, "samples": 50000, "image_size": (96, 96)}),
    _ks("ks-resnet50-notop", "keras.applications.ResNet50(include_top=False, pooling='avg') + Dense(100, softmax), "
        "SGD 0.1 momentum 0.9 weight decay 1e-4", "keras.applications",
        facts={"classes": 100, "samples": 130000, "image_size": (224, 224)}, slow=True,
        allowed={"ML402": "true: ResNet-50 v1 puts stride 2 on the 1×1 convolutions of both branches of its "
                          "downsampling blocks, so 3/4 of the positions are never read (He et al. 2019, Bag of "
                          "Tricks, ResNet-D)",
                 "ML102": "true: Keras' ResNet50 convolutions keep a bias that the following "
                          "BatchNormalization cancels (wasted parameters, harmless to accuracy)"}),
    _ks("ks-efficientnetb0-top", "keras.applications.EfficientNetB0(include_top=True), 1000 classes",
        "keras.applications", facts={"classes": 1000, "samples": 1281167, "image_size": (224, 224)}, slow=True),
    _ks("ks-transfer-mobilenetv2", "frozen MobileNetV2 with mobilenet_v2.preprocess_input, augmentation, GAP, "
        "Dropout, Dense(13, softmax): the transfer-learning recipe modellint recommends",
        "TensorFlow tutorial 'Transfer learning and fine-tuning'",
        facts={"classes": 13, "samples": 8000, "image_size": (128, 128)}),
    _ks("ks-mnist-mlp", "Flatten → Dense(128, relu) → Dropout(0.2) → Dense(10) with from_logits=True",
        "TensorFlow 2 quickstart for beginners", facts=MNIST),
    _ks("ks-mnist-convnet", "two conv+pool stages, Flatten, Dropout(0.5), Dense(10, softmax)",
        "keras.io example 'Simple MNIST convnet'", facts=MNIST),
    _ks("ks-imdb-bilstm", "Embedding → two Bidirectional(LSTM(64)) → Dense(1, sigmoid)",
        "keras.io example 'Bidirectional LSTM on IMDB'", facts={"classes": 2, "samples": 25000}),
    _ks("ks-unet", "three-level U-Net (Conv-BN-ReLU, Conv2DTranspose, skip concatenation), sigmoid mask",
        "Ronneberger et al. 2015; keras.io segmentation examples", task="segmentation",
        facts={"samples": 3000, "image_size": (64, 64)}),
    _ks("ks-transformer-text", "token+position embedding, one transformer block, GAP1D, Dense(2, softmax)",
        "keras.io example 'Text classification with Transformer'", facts={"classes": 2, "samples": 25000}),
    _ks("ks-regression-bounded-sigmoid", "MLP with Dense(1, sigmoid) and mse on a target scaled to [0, 1]",
        "textbook bounded regression", task="regression-bounded", facts={"samples": 5000}),
    _ks("ks-regression-linear", "Normalization → Dense(64) → Dense(64) → Dense(1), mean absolute error",
        "TensorFlow tutorial 'Basic regression: predict fuel efficiency'", task="regression",
        facts={"samples": 314}),
    _ks("ks-count-softplus", "MLP with Dense(1, softplus) and the Poisson loss on hourly counts",
        "textbook count regression (Poisson GLM head)", task="regression-nonnegative",
        facts={"samples": 17379}),
    _ks("ks-multilabel-sigmoid", "CNN with Dense(20, sigmoid) and binary cross-entropy (multi-label tags)",
        "textbook multi-label classification", task="multilabel",
        facts={"classes": 20, "samples": 20000, "image_size": (64, 64)}),
    _ks("ks-conv-autoencoder", "Conv/MaxPool encoder, Conv2DTranspose decoder, sigmoid output, BCE",
        "keras.io example 'Convolutional autoencoder for image denoising'", task="reconstruction",
        facts={"samples": 60000, "image_size": (28, 28)}),
    _ks("ks-text-embedding-gap", "Embedding → Dropout → GlobalAveragePooling1D → Dropout → Dense(1), "
        "BinaryCrossentropy(from_logits=True)", "TensorFlow tutorial 'Basic text classification'",
        facts={"classes": 2, "samples": 25000}),
    _ts("ts-resnet18", "ResNet-18 (torchvision architecture) at 224×224, 1000 classes",
        "He et al. 2016; torchvision.models.resnet18", facts={"classes": 1000, "samples": 1281167,
                                                                "image_size": (224, 224)},
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}),
    _ts("ts-resnet50", "ResNet-50 (torchvision architecture) at 224×224, 1000 classes",
        "He et al. 2016; torchvision.models.resnet50", facts={"classes": 1000, "samples": 1281167,
                                                                "image_size": (224, 224)}, slow=True),
    _ts("ts-cifar-resnet20", "ResNet-20 for CIFAR-10 (3×3 stem, BasicBlocks, projection shortcuts), SGD 0.1 "
        "momentum 0.9", "He et al. 2016, sec. 4.2", facts=CIFAR10,
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}),
    _ts("ts-quickstart-mlp", "Flatten → Linear(784, 512) → ReLU → Linear(512, 512) → ReLU → Linear(512, 10)",
        "PyTorch 'Quickstart' tutorial (FashionMNIST)", facts=MNIST),
    _ts("ts-lstm-classifier",
        "Embedding → LSTM(batch_first=True) → last hidden state → Dropout → Linear(128, 5)",
        "PyTorch text-classification tutorials", facts={"classes": 5, "samples": 50000}),
    _ts("ts-unet", "three-level U-Net (DoubleConv with BatchNorm, ConvTranspose2d, torch.cat skips), one logit "
        "channel", "Ronneberger et al. 2015; common PyTorch U-Net implementations",
        loss="BCEWithLogitsLoss", task="segmentation", facts={"samples": 3000, "image_size": (64, 64)}),
    _ts("ts-vit-tiny", "ViT on 4×4 patches of 32×32 images: learned positions, two pre-norm encoder layers, mean "
        "pooling, AdamW", "Dosovitskiy et al. 2021 (small-scale variant)", facts=CIFAR10,
        optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.05}),
    _ts("ts-text-transformer", "Embedding + learned positions → TransformerEncoder(2) → mean → Linear(64, 4)",
        "PyTorch nn.TransformerEncoder text classifier", facts={"classes": 4, "samples": 120000}),
    _ts("ts-multilabel-cnn", "CNN with a 20-logit head trained with BCEWithLogitsLoss (multi-label tags)",
        "textbook multi-label classification", loss="BCEWithLogitsLoss", task="multilabel",
        facts={"classes": 20, "samples": 20000, "image_size": (64, 64)}),
    _ts("ts-regression-mlp", "Linear → ReLU → Linear → ReLU → Linear(64, 1), MSELoss",
        "textbook regression (Boston housing)", loss="MSELoss", task="regression", facts={"samples": 404}),
    _ts("ts-count-softplus", "MLP ending in nn.Softplus for PoissonNLLLoss(log_input=False) on counts",
        "textbook count regression", loss="PoissonNLLLoss", task="regression-nonnegative",
        facts={"samples": 17379}),
    _ts("ts-mlp-autoencoder", "784 → 256 → 32 (linear code) → 256 → 784 + Sigmoid, BCELoss",
        "PyTorch autoencoder tutorials (linear bottleneck code)", loss="BCELoss", task="reconstruction",
        facts={"samples": 60000, "image_size": (28, 28)}),
]

ALL = PAIRS + SOUND


def by_id(case_id: str):
    for entry in ALL:
        if entry.id == case_id:
            return entry
    raise KeyError(case_id)
