use serde::{Deserialize, Serialize};

/// Task error codes. 0–5 are the flight-software command responses and 10–17 the Docker codes of
/// Clustergate-2 (its functional reference, §14); 20 and up are orbitdock's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: the task type is not known.
    InvalidOpcode,
    /// 2: a field is missing or has a bad value.
    ValidationError,
    /// 3: malformed input.
    FormatError,
    /// 4: the task ran and failed (file not found, container exited non-zero, ...).
    ExecutionError,
    /// 5: the system is busy.
    Busy,
    /// 10: `docker.load` names a tar file that is not in the volume.
    DockerTarfileNotFound,
    /// 11: the tar file is not a loadable image archive.
    DockerTarfileLoadFailed,
    /// 12: the image build failed.
    DockerBuildFailed,
    /// 13: the Dockerfile is not in the volume.
    DockerDockerfileNotFound,
    /// 14: the image's binary is for another architecture.
    DockerExecFormatError,
    /// 15: the image is neither in the onboard catalogue nor one of the tenant's.
    DockerImageNotFound,
    /// 16: the archive loaded but does not hold the image named.
    DockerImageLoadFailed,
    /// 17: an image would have to be pulled, and nothing can be pulled onboard.
    DockerErrorPullingImage,
    /// 20: the task ran longer than its `max_duration` and was stopped.
    MaxDurationExceeded,
    /// 21: an object failed to arrive or to verify.
    TransferFailed,
    /// 22: an operator rejected the execution before it was sent.
    Rejected,
    /// 23: the execution was cancelled: before it was sent, or onboard (the task was stopped,
    /// or never started).
    Cancelled,
    /// 24: the task's trigger did not fire before its deadline.
    TriggerDeadline,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::InvalidOpcode => 1,
            ErrorCode::ValidationError => 2,
            ErrorCode::FormatError => 3,
            ErrorCode::ExecutionError => 4,
            ErrorCode::Busy => 5,
            ErrorCode::DockerTarfileNotFound => 10,
            ErrorCode::DockerTarfileLoadFailed => 11,
            ErrorCode::DockerBuildFailed => 12,
            ErrorCode::DockerDockerfileNotFound => 13,
            ErrorCode::DockerExecFormatError => 14,
            ErrorCode::DockerImageNotFound => 15,
            ErrorCode::DockerImageLoadFailed => 16,
            ErrorCode::DockerErrorPullingImage => 17,
            ErrorCode::MaxDurationExceeded => 20,
            ErrorCode::TransferFailed => 21,
            ErrorCode::Rejected => 22,
            ErrorCode::Cancelled => 23,
            ErrorCode::TriggerDeadline => 24,
        }
    }

    /// The upper-case name, as Clustergate-2 shows it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidOpcode => "INVALID_OPCODE",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::FormatError => "FORMAT_ERROR",
            ErrorCode::ExecutionError => "EXECUTION_ERROR",
            ErrorCode::Busy => "BUSY",
            ErrorCode::DockerTarfileNotFound => "DOCKER_TARFILE_NOT_FOUND",
            ErrorCode::DockerTarfileLoadFailed => "DOCKER_TARFILE_LOAD_FAILED",
            ErrorCode::DockerBuildFailed => "DOCKER_BUILD_FAILED",
            ErrorCode::DockerDockerfileNotFound => "DOCKER_DOCKERFILE_NOT_FOUND",
            ErrorCode::DockerExecFormatError => "DOCKER_EXEC_FORMAT_ERROR",
            ErrorCode::DockerImageNotFound => "DOCKER_IMAGE_NOT_FOUND",
            ErrorCode::DockerImageLoadFailed => "DOCKER_IMAGE_LOAD_FAILED",
            ErrorCode::DockerErrorPullingImage => "DOCKER_ERROR_PULLING_IMAGE",
            ErrorCode::MaxDurationExceeded => "MAX_DURATION_EXCEEDED",
            ErrorCode::TransferFailed => "TRANSFER_FAILED",
            ErrorCode::Rejected => "REJECTED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::TriggerDeadline => "TRIGGER_DEADLINE_EXCEEDED",
        }
    }
}
