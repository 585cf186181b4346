"""HTTP front door of the jobs service: ``/api/v1/jobs``.

Read and cancel only: jobs are submitted by the services that own them (backtests, sweeps,
training), never directly by a client.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from algotrendy.gateway.auth import CurrentUser
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.jobs.interface import JobRead, JobsApi, JobStatus


async def jobs_api(request: Request) -> JobsApi:
    api: JobsApi = request.app.state.services["jobs"]
    return api


Jobs = Annotated[JobsApi, Depends(jobs_api)]

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)


@router.get("")
async def list_jobs(
    user: CurrentUser,
    jobs: Jobs,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[JobRead]:
    """Your jobs, newest first."""
    return await jobs.list(owner=user.user_id, status=status, kind=kind, limit=limit, offset=offset)


@router.get("/{job_id:uuid}")
async def get_job(job_id: uuid.UUID, user: CurrentUser, jobs: Jobs) -> JobRead:
    """One of your jobs: status, progress, ETA, and result or error once finished."""
    return await jobs.get(owner=user.user_id, job_id=job_id)


@router.post("/{job_id:uuid}/cancel")
async def cancel_job(job_id: uuid.UUID, user: CurrentUser, jobs: Jobs) -> JobRead:
    """Cancel a queued job at once, or ask a running one to stop (409 once it has finished)."""
    return await jobs.cancel(owner=user.user_id, job_id=job_id)
