"""Work orders (工单): model and workflow, routing to departments, service commitments on the city's working
calendar, SLA reminders and alarms, duplicate linking, notices to the citizen, and two backends behind one interface
(the embedded database and Request Tracker 5). Entry points: `crm_adapter.service.build_work_orders(settings, db)`
and `crm_adapter.api.router`."""
