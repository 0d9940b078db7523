"""The two things LocalStack community lacks to run a Lambda image function (``PackageType: Image``).

- ``image_function``: community refuses image functions when it starts their container ("Container images are a Pro
  feature", from ``DockerRuntimeExecutor.get_image``, which is consulted only when no hook named an image). This hook
  names the function's ``ImageUri`` (a tag in the local Docker engine, as ``sam build`` leaves it) and the command
  the image runs (the function's ``ImageConfig``, else the image's own ENTRYPOINT + CMD) behind LocalStack's init,
  and caps the container's memory at the function's ``MemorySize`` as Lambda does.
- ``lambda_init``: LocalStack downloads its Lambda init (lambda-runtime-init, from GitHub) on first use. Where the
  download works, that is the init used. Where it does not (no route to GitHub), this hook puts ``rapid_init.py``
  at the path the download would fill, which LocalStack then takes as installed: a stand-in that runs the image's
  command under the Runtime Interface Emulator the Lambda base images carry.

Both act on image functions only; zip functions are LocalStack's as usual.
"""

from __future__ import annotations

import logging
import os
import tempfile
from importlib import resources

from localstack.aws.api.lambda_ import PackageType
from localstack.packages import InstallTarget
from localstack.services.lambda_ import hooks
from localstack.services.lambda_.packages import lambda_runtime_package
from localstack.utils.docker_utils import DOCKER_CLIENT

LOG = logging.getLogger(__name__)
STANDIN = "rapid_init.py"


def _is_image(function_version) -> bool:  # noqa: ANN001  (LocalStack's FunctionVersion)
    return function_version.config.package_type == PackageType.Image


@hooks.prepare_docker_executor()
def lambda_init(function_version) -> None:  # noqa: ANN001
    """Before LocalStack installs its init for an image function: its own if it downloads, else the stand-in."""
    if not _is_image(function_version):
        return
    installer = lambda_runtime_package.get_installer()
    if installer.is_installed():
        return
    try:
        installer.install()
        return
    except Exception as exc:  # any download failure: no route, DNS, proxy, HTTP status
        reason = f"{type(exc).__name__}: {exc}"
    directory = installer._get_install_dir(InstallTarget.VAR_LIBS)
    target = installer._get_install_marker_path(directory)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    code = resources.files(__package__).joinpath(STANDIN).read_bytes()
    # Written whole, then renamed: a concurrent start never copies half a file into a container.
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".init-")
    with os.fdopen(fd, "wb") as out:
        out.write(code)
    os.chmod(partial, 0o755)
    os.replace(partial, target)
    LOG.warning(
        "midas-localstack: LocalStack's Lambda init could not be downloaded (%s); placed the stand-in at %s, which "
        "runs image functions under the image's own Runtime Interface Emulator",
        reason,
        target,
    )


@hooks.start_docker_executor()
def image_function(container_config, function_version) -> None:  # noqa: ANN001
    """Name the local image and its command for an image function's container (LocalStack keeps its init as the
    entrypoint; the init runs this command as the runtime)."""
    if not _is_image(function_version):
        return
    config = function_version.config
    image = config.image.image_uri
    try:
        inspected = DOCKER_CLIENT.inspect_image(image, pull=False)["Config"]
    except Exception as exc:
        raise RuntimeError(f"image {image} is not in the local Docker engine (build it: sam build): {exc}") from exc
    own = config.image_config
    entrypoint = (own and own.entrypoint) or inspected.get("Entrypoint") or []
    command = (own and own.command) or inspected.get("Cmd") or []
    if not entrypoint + command:
        raise RuntimeError(f"image {image} has no ENTRYPOINT or CMD, and the function no ImageConfig")
    container_config.image_name = image
    container_config.command = [*entrypoint, *command]
    container_config.workdir = (own and own.working_directory) or inspected.get("WorkingDir") or None
    container_config.mem_limit = f"{config.memory_size}m"
    LOG.debug("midas-localstack: %s runs %s %s", function_version.qualified_arn, image, container_config.command)
