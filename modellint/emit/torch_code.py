"""Graph -> a torch.nn.Module (written below)."""


def emit_torch(graph, weights=None):
    raise NotImplementedError


def build_torch(graph, weights=None):
    raise NotImplementedError


def torch_module_names(graph):
    raise NotImplementedError
