"""The JSON API of the reading workflow, mounted by ``viewer.app`` under ``/api``."""

from fastapi import APIRouter, Depends

from reading.api import (
    access,
    admin,
    admin_rules,
    admin_sites,
    admin_tokens,
    admin_users,
    ai,
    audit,
    patient_links,
    peer,
    priors,
    qa,
    qa_reports,
    reports,
    site,
    worklist,
)
from reading.api.deps import audited_export

router = APIRouter(prefix="/api")
router.include_router(worklist.router)
router.include_router(reports.router)
router.include_router(ai.router)
router.include_router(site.router)
router.include_router(admin.router)
router.include_router(admin_rules.router)
router.include_router(admin_sites.router)
router.include_router(admin_users.router)
router.include_router(admin_tokens.router)
router.include_router(access.router)
router.include_router(priors.router)
router.include_router(patient_links.router)
router.include_router(audit.router)
# QA downloads (CSV, XLSX, the monthly PDF) are audited as exports.
for exported in (qa.router, peer.router, qa_reports.router):
    router.include_router(exported, dependencies=[Depends(audited_export)])
