"""MediaImage: an ECR repository and the Lambda container image built from one of containers/*/Dockerfile."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
from pulumi import Output, ResourceOptions


def keep_recent_images(count: int) -> dict:
    """ECR lifecycle policy keeping the newest `count` images (older digests are no longer deployed)."""
    if count < 1:
        raise ValueError(f"keep at least one image, got {count}")
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the newest {count} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": count},
                "action": {"type": "expire"},
            }
        ]
    }


@dataclass(frozen=True)
class MediaImageArgs:
    """Inputs of a MediaImage."""

    context_dir: str
    """Build context: the repository root, so the image can copy `functions/`."""
    dockerfile: str
    """Path of the Dockerfile, e.g. `containers/ffmpeg/Dockerfile`."""
    keep_images: int = 10
    """Images kept in the repository."""
    platform: str = "linux/amd64"
    """Target platform; must match the functions' architecture (x86_64)."""
    build_on_preview: bool = True
    """Build (without pushing) during `pulumi preview`, so a broken Dockerfile fails the preview; needs a Docker
    daemon with BuildKit wherever previews run."""


class MediaImage(pulumi.ComponentResource):
    """A private, scanned ECR repository and one image pushed to it, addressed by digest."""

    repository_url: Output[str]
    """Repository URL (`account.dkr.ecr.region.amazonaws.com/name`)."""
    image_uri: Output[str]
    """`repository@sha256:digest`, the form Lambda accepts and that changes whenever the image does."""

    def __init__(self, name: str, args: MediaImageArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:MediaImage", name, None, opts)
        child = ResourceOptions(parent=self)

        # Private repository, scanned on push, encrypted at rest.
        repository = aws.ecr.Repository(
            f"{name}-repository",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            image_tag_mutability="MUTABLE",
            # Images are built from the repository, so `pulumi destroy` may delete them with the repository.
            force_delete=True,
            opts=child,
        )
        # Old images expire once they are no longer the newest few.
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=json.dumps(keep_recent_images(args.keep_images)),
            opts=child,
        )
        # Registry credentials for the push.
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        # Build with BuildKit and push; the digest pins exactly what was built.
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=args.context_dir),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            platforms=[docker_build.Platform(args.platform)],
            tags=[repository.repository_url.apply(lambda url: f"{url}:latest")],
            push=True,
            build_on_preview=args.build_on_preview,
            registries=[
                docker_build.RegistryArgs(
                    address=repository.repository_url.apply(lambda url: url.split("/")[0]),
                    username=token.user_name,
                    password=Output.secret(token.password),
                )
            ],
            opts=child,
        )

        self.repository_url = repository.repository_url
        # Image.ref is `repo:tag@digest`, which Lambda refuses; it takes `repo@digest`.
        self.image_uri = Output.concat(repository.repository_url, "@", image.digest)
        self.register_outputs({"repositoryUrl": self.repository_url, "imageUri": self.image_uri})
