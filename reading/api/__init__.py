"""The JSON API of the reading workflow, mounted by ``viewer.app`` under ``/api``."""

from fastapi import APIRouter

from reading.api import access, admin, audit, peer, qa, qa_reports, reports, site, worklist

router = APIRouter(prefix="/api")
router.include_router(worklist.router)
router.include_router(reports.router)
router.include_router(site.router)
router.include_router(admin.router)
router.include_router(access.router)
router.include_router(qa.router)
router.include_router(audit.router)
router.include_router(peer.router)
router.include_router(qa_reports.router)
